"""Schemathesis against the app's own OpenAPI document, on a real uvicorn server.

Run once with an operator's token and once with an appliance's token: no
5xx, and every response (status, content type, body) matches the document.
The server runs in a thread of this process on a free loopback port, with
limits high enough that fuzzing does not trip the rate limiter.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings

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
