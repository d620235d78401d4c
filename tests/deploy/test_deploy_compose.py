"""docker-compose.yml, checked without a Docker engine.

The file must validate against the Compose specification's JSON schema,
give the api, worker and migrate services every variable of the settings
model with no secret written into it, order startup (migrate completes before
api and worker start) and health-check every long-running service.

``compose_spec.json`` is vendored unchanged from the ``docker-compose`` 1.29.2
wheel on PyPI (``compose/config/compose_spec.json``, the compose-spec
project's schema, Apache-2.0); no package on PyPI ships a newer copy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from engine.settings import ENV_VARS, Settings

REPO = Path(__file__).resolve().parents[2]
SCHEMA = Path(__file__).with_name("compose_spec.json")
HEARTH_SERVICES = ("api", "worker", "migrate")
# `${NAME:?message}`: compose refuses to start while NAME is unset or empty.
REQUIRED = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):\?[^}]*\}$")
SECRETISH = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")


def schema_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    # The schema names its draft as ".../draft/2019-09/schema#", a URL that
    # jsonschema does not know; say the draft outright instead of letting it
    # fall back (with a DeprecationWarning) to the newest one.
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def test_compose_file_validates_against_the_compose_spec(compose):
    errors = sorted(schema_validator().iter_errors(compose), key=lambda error: error.json_path)
    assert not errors, "\n".join(f"{error.json_path}: {error.message}" for error in errors)


def test_compose_schema_rejects_an_unknown_service_key():
    """Guards the check above: the schema must refuse what compose refuses."""
    errors = list(schema_validator().iter_errors({"services": {"api": {"imgae": "x"}}}))
    assert errors


@pytest.mark.parametrize("service", HEARTH_SERVICES)
def test_every_setting_is_set_for_hearth_services(compose, service):
    environment = compose["services"][service]["environment"]
    if isinstance(environment, list):
        environment = dict(entry.split("=", 1) for entry in environment)
    missing = [name for name in ENV_VARS if not environment.get(name)]
    assert not missing, f"{service} lacks {missing}"
    for field in Settings.model_fields.values():
        if field.repr is False:
            value = environment[field.alias]
            match = REQUIRED.match(value)
            assert match and match["name"] == field.alias, (
                f"{service}: {field.alias} must be ${{{field.alias}:?...}}, not {value!r}"
            )


def test_no_secret_is_written_into_the_file(compose):
    leaks = []
    for name, service in compose["services"].items():
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(entry.split("=", 1) for entry in environment)
        for key, value in environment.items():
            if not SECRETISH.search(key):
                continue
            text = str(value)
            # Only interpolation: required, or defaulting to empty.
            if not (REQUIRED.match(text) or re.fullmatch(r"\$\{[A-Z0-9_]+:-\}", text)):
                leaks.append(f"{name}.{key}={text}")
    assert not leaks, leaks
    database_url = compose["services"]["api"]["environment"]["DATABASE_URL"]
    assert "${POSTGRES_PASSWORD:?" in database_url


def one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


def test_long_running_services_have_health_checks(compose):
    missing = [
        name
        for name, service in compose["services"].items()
        if not one_shot(service) and not service.get("healthcheck", {}).get("test")
    ]
    assert not missing, f"no health check: {missing}"
    one_shots = {name for name, service in compose["services"].items() if one_shot(service)}
    assert {"migrate", "ollama-init"} <= one_shots


@pytest.mark.parametrize("service", ["api", "worker"])
def test_migration_completes_before_hearth_starts(compose, service):
    depends_on = compose["services"][service]["depends_on"]
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    for store in ("redis",):
        assert depends_on[store]["condition"] == "service_healthy"
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize(
    ("volume", "variable"),
    [("repos", "REPOS_DIR"), ("data", "HEARTH_DATA_DIR")],
)
def test_named_volumes_hold_repos_and_data(compose, volume, variable):
    assert volume in compose["volumes"]
    for name in HEARTH_SERVICES:
        service = compose["services"][name]
        path = service["environment"][variable]
        assert f"{volume}:{path}" in service["volumes"], f"{name} does not mount {volume} at {path}"


def test_backing_services_and_demo_appliances(compose):
    services = compose["services"]
    assert services["postgres"]["image"].split(":")[1].startswith("16")
    assert services["redis"]["image"].split(":")[1].startswith("7")
    assert "8000:8000" in services["api"]["ports"]
    init = services["ollama-init"]
    assert init["command"][0] == "pull" and init["command"][1].startswith("${OLLAMA_MODEL")
    assert init["depends_on"]["ollama"]["condition"] == "service_healthy"
    appliances = [
        name
        for name, service in services.items()
        if isinstance(service.get("build"), dict)
        and service["build"].get("dockerfile") == "deploy/appliance.Dockerfile"
    ]
    assert len(appliances) == 2, appliances
    for name in HEARTH_SERVICES:
        assert services[name]["build"]["dockerfile"] == "Dockerfile"
        assert services[name]["read_only"] is True
        assert services[name]["cap_drop"] == ["ALL"]
