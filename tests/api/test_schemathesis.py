"""Schemathesis against the app's own OpenAPI document, on a real uvicorn server.

Run once with an operator's token and once with an appliance's token: no
5xx, and every response (status, content type, body) matches the document.
Then structurally hostile JSON (issue 16): every route, as an operator, an
anonymous caller and an appliance, with bodies built to break the decoder and
the queries; no answer may be 500 or above.
The server runs in a thread of this process on a free loopback port, with
limits high enough that fuzzing does not trip the rate limiter.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from api.app import create_app
from api.context import Limits
from tests.api.conftest import World, seed
from tests.db.pg import run_sync

EXAMPLES = 15
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
]


@pytest.fixture(scope="module")
def live(settings, repos) -> Iterator[tuple[str, World]]:
    world = run_sync(seed(settings, repos[1]))
    limits = Limits(heartbeat_per_minute=100_000, login_per_minute_per_address=100_000)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(settings, limits=limits, migrate=False, pool_size=4)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield base, world
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def api_schema(live):
    base, _ = live
    return schemathesis.openapi.from_url(base + "/schema/openapi.json")


def _fuzz(api_schema, base: str, headers: dict[str, str]) -> list[str]:
    """Fuzz every operation; return one line per operation that failed a check."""
    failures = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            case.call_and_validate(base_url=base, headers=headers, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.label}: {str(exc)[:800]}")
    return failures


# Schemathesis's own pytest plugin does not run on pytest 9 ('Function' has no '_nodeid'),
# so the operations are walked here with hypothesis directly.
@pytest.mark.parametrize("who", ["operator", "appliance"])
def test_api_conforms_to_its_document(live, api_schema, who) -> None:
    base, world = live
    assert _fuzz(api_schema, base, world.auth(who)) == []


# --- structurally hostile JSON (issue 16, class 1) ------------------------------------

_HOSTILE_ATOMS = st.sampled_from([
    2**63, 2**64, -(2**63) - 1, 10**40, -1, 0, 1e308, -1e308, 1e-320, "", "\x00", "\ud800",
    "a" * 5000, "123", "yes", "true", True, None, [], {}, "../../etc/passwd", "$ANSIBLE_VAULT;1.1",
])
_JSON = st.recursive(_HOSTILE_ATOMS | st.text(max_size=20) | st.integers(),
                     lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)


def _deep(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"0" + b"}" * depth
    return b'{"a":[' * (depth // 2) + b"1" + b"]}" * (depth // 2)  # alternating


_RAW = st.one_of(
    st.builds(_deep, st.sampled_from([65, 200, 1_000, 10_000, 100_000]),
              st.sampled_from(["array", "object", "mixed"])),
    st.sampled_from([b"", b"{", b"[1,", b'{"a":1}}', b"NaN", b"Infinity", b"1e99999",
                     b"9" * 5000, b'"\\ud800"', b"\xff\xfe", b"null", b"[]", b'{"a":' * 65]),
)


def _properties(doc: dict, schema: dict) -> list[str]:
    """Top-level property names of a request body schema (through one $ref)."""
    if "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return list(schema.get("properties", {}))


@st.composite
def _hostile_body(draw, names: list[str]) -> bytes:
    choice = draw(st.integers(0, 2))
    if choice == 0 or not names:
        return draw(_RAW)
    if choice == 1:  # the right field names with hostile values
        body = {name: draw(_JSON) for name in names}
    else:  # a right-looking document with one field nested far too deep
        body = {name: draw(_JSON) for name in names}
        body[draw(st.sampled_from(names))] = json.loads(_deep(100, "array"))
    return json.dumps(body).encode()


_HOSTILE_INT = st.sampled_from(["9223372036854775808", "18446744073709551616", "-1", "0",
                                "-9223372036854775809", "2147483648", "1" * 40])


def _hostile_operations(doc: dict) -> list[tuple[str, str, dict]]:
    ops = [(method.upper(), path, item[method]) for path, item in doc["paths"].items()
           for method in item if method in ("get", "post", "put", "patch", "delete")]
    # logging out ends the caller's session: last, so every other route sees a live token
    return sorted(ops, key=lambda op: op[1] == "/api/v1/auth/logout")


def _probe(http: httpx.Client, world: World, who: str, method: str, path: str,
           names: list[str]) -> None:
    """Hypothesis over one operation; raises on the first answer of 500 or above."""

    # every operation gets the deepest documents and the widest id, then random ones
    @given(body=_hostile_body(names), number=_HOSTILE_INT)
    @example(body=_deep(10_000, "array"), number="9223372036854775808")
    @example(body=_deep(10_000, "object"), number="-9223372036854775809")
    @example(body=_deep(100_000, "mixed"), number="1" * 40)
    @settings(max_examples=12, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(body: bytes, number: str) -> None:
        url = (path.replace("{tenant}", "acme").replace("{branch}", "edits")
               .replace("{path}", "users.yaml")
               .replace("{appliance_id}", world.appliance_ids["acme/front-office"]))
        for name in ("person_id", "run_id", "number", "token_id"):
            url = url.replace("{" + name + "}", number)
        response = http.request(method, url, content=body,
                                headers={**world.auth(who), "Content-Type": "application/json"})
        assert response.status_code < 500, (method, url, body[:200], response.text)

    run()


@pytest.mark.parametrize("who", ["operator", "anonymous", "appliance"])
def test_hostile_json_never_gets_a_server_error(live, who) -> None:
    """Every route in the document, bodies built to break decoders and queries (deep
    nesting, ids beyond 64 bits, NUL, lone surrogates, huge numbers, wrong types): every
    answer is below 500."""
    base, world = live
    doc = httpx.get(base + "/schema/openapi.json").json()
    failures: list[str] = []
    with httpx.Client(base_url=base, timeout=30) as http:
        for method, path, operation in _hostile_operations(doc):
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            try:
                _probe(http, world, who, method, path, _properties(doc, schema))
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{method} {path}: {str(exc)[:600]}")
    assert failures == []
