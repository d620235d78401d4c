"""Every route in the OpenAPI document x every role, against a table written out by hand.

``EXPECTED`` states each outcome literally (it is not derived from
``api.auth.PERMISSIONS``, so a wrong entry there fails here): allowed means a
2xx answer (each call is well-formed, with a valid body); anonymous callers and
the wrong kind of credential get 401; a role the rule does not list gets 403
inside its own tenant; a caller with no role in the tenant gets 404. Then a
cross-tenant probe: tenant globex's operator and appliance call every route
that names something of tenant acme, get 404 (or 401), and no table changes
except for the audit rows recording the denials.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.auth import PERMISSIONS
from tests.api.conftest import APPLIANCE, PASSWORD, World
from tests.api.test_heartbeat import beat

ROLES = ["admin", "operator", "customer", "auditor", "other-operator", "appliance", "anonymous"]
PEOPLE = {"admin", "operator", "customer", "auditor"}

BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/people"): {"username": "newcomer", "password": PASSWORD},
    ("PATCH", "/api/v1/people/{person_id}"): {"disabled": False},
    ("PUT", "/api/v1/tenants/{tenant}/members/{person_id}"): {"role": "customer"},
    ("POST", "/api/v1/tenants/{tenant}/appliances"): {"name": "newbox"},
    ("POST", "/api/v1/auth/token"): {"username": "customer", "password": PASSWORD},
    ("POST", "/api/v1/heartbeat"): None,  # built per call (fresh sent_at)
    ("POST", "/api/v1/appliances/{appliance_id}/sync"): {"dry_run": True},
    ("POST", "/api/v1/me/tokens"): {"name": "laptop", "scope": "read"},
    ("POST", "/api/v1/tenants/{tenant}/pulls"): {"title": "New topic", "source": "topic-new"},
    ("POST", "/api/v1/tenants/{tenant}/pulls/{number}/reviews"): {"event": "comment"},
    ("POST", "/api/v1/support"): {"message": "How do I reach my files from home?",
                                  "tenant": "acme"},
    ("PUT", "/api/v1/tenants/{tenant}/branches/{branch}/files/{path}"): {
        "message": "Rename", "edits": [{"op": "set", "value": "Dr. M. Lopez",
                                        "path": ["spec", "users", "name=mlopez", "full_name"]}]},
}
ORDER = {"GET": 0, "POST": 1, "PUT": 1, "PATCH": 1, "DELETE": 2}


def operations(app) -> list[tuple[str, str, str]]:
    """(method, OpenAPI path, permission) of every operation in the document."""
    handlers = {}
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods:
                handlers[(method, route.path_format)] = handler.opt.get("permission")
    doc = app.openapi_schema.to_schema()
    ops = [(method.upper(), path, handlers[(method.upper(), path)])
           for path, item in doc["paths"].items() for method in item
           if method in ("get", "post", "put", "patch", "delete")]
    # logging out ends the caller's token: last, after every other route
    return sorted(ops, key=lambda op: (op[1] == "/api/v1/auth/logout", ORDER[op[0]], op[1]))


# The expected outcome of every operation for every caller, written out by hand from
# the README's route table, independently of ``api.auth.PERMISSIONS``: a wrong entry in
# either fails this test. Columns follow ROLES: admin, operator, customer, auditor,
# other-operator (operator of globex calling acme's routes), appliance (acme's own
# front-office token), anonymous. "ok" is a 2xx answer.
EXPECTED: dict[tuple[str, str], str] = {
    ("GET", "/api/v1/appliance/{appliance_id}/config"):        "ok  ok  403 ok  404 ok  401",
    ("GET", "/api/v1/appliances/{appliance_id}"):               "ok  ok  ok  ok  404 401 401",
    ("GET", "/api/v1/appliances/{appliance_id}/diff"):          "ok  ok  403 ok  404 401 401",
    ("GET", "/api/v1/appliances/{appliance_id}/runs"):          "ok  ok  403 ok  404 401 401",
    ("GET", "/api/v1/me/tokens"):                               "ok  ok  ok  ok  ok  401 401",
    ("GET", "/api/v1/people"):                                  "ok  403 403 403 403 401 401",
    ("GET", "/api/v1/people/{person_id}"):                      "ok  403 403 403 403 401 401",
    ("GET", "/api/v1/runs/{run_id}"):                           "ok  ok  403 ok  404 401 401",
    ("GET", "/api/v1/runs/{run_id}/events"):                    "ok  ok  403 ok  404 401 401",
    ("GET", "/api/v1/tenants"):                                 "ok  ok  ok  ok  ok  401 401",
    ("GET", "/api/v1/tenants/{tenant}"):                        "ok  ok  ok  ok  404 401 401",
    ("GET", "/api/v1/tenants/{tenant}/appliances"):             "ok  ok  ok  ok  404 401 401",
    ("GET", "/api/v1/tenants/{tenant}/audit"):                  "ok  ok  403 ok  404 401 401",
    ("GET", "/api/v1/tenants/{tenant}/history"):                "ok  ok  ok  ok  404 401 401",
    ("GET", "/api/v1/tenants/{tenant}/pulls"):                  "ok  ok  ok  ok  404 401 401",
    ("GET", "/api/v1/tenants/{tenant}/pulls/{number}"):         "ok  ok  ok  ok  404 401 401",
    ("GET", "/api/v1/tenants/{tenant}/pulls/{number}/diff"):    "ok  ok  ok  ok  404 401 401",
    ("GET", "/api/v1/support"):                                 "ok  ok  ok  ok  ok  401 401",
    ("GET", "/api/v1/support/{support_id}"):                    "ok  ok  ok  ok  404 401 401",
    ("GET", "/health"):                                         "ok  ok  ok  ok  ok  ok  ok",
    ("GET", "/ready"):                                          "ok  ok  ok  ok  ok  ok  ok",
    ("POST", "/api/v1/appliances/{appliance_id}/sync"):         "ok  ok  403 403 404 401 401",
    ("POST", "/api/v1/appliances/{appliance_id}/token"):        "ok  ok  403 403 404 401 401",
    ("POST", "/api/v1/auth/token"):                             "ok  ok  ok  ok  ok  ok  ok",
    # the refresh token in the body is the credential (a fresh login's, per call)
    ("POST", "/api/v1/auth/refresh"):                           "ok  ok  ok  ok  ok  ok  ok",
    ("POST", "/api/v1/auth/logout"):                            "ok  ok  ok  ok  ok  401 401",
    ("POST", "/api/v1/heartbeat"):                              "401 401 401 401 401 ok  401",
    ("POST", "/api/v1/heartbeat/reenrol"):                      "401 401 401 401 401 ok  401",
    ("POST", "/api/v1/me/tokens"):                              "ok  ok  ok  ok  ok  401 401",
    ("POST", "/api/v1/people"):                                 "ok  403 403 403 403 401 401",
    ("PATCH", "/api/v1/people/{person_id}"):                    "ok  403 403 403 403 401 401",
    ("POST", "/api/v1/support"):                                "ok  ok  ok  403 404 401 401",
    ("POST", "/api/v1/tenants/{tenant}/appliances"):            "ok  ok  403 403 404 401 401",
    ("POST", "/api/v1/tenants/{tenant}/pulls"):                 "ok  ok  ok  403 404 401 401",
    ("POST", "/api/v1/tenants/{tenant}/pulls/{number}/close"):  "ok  ok  403 403 404 401 401",
    ("POST", "/api/v1/tenants/{tenant}/pulls/{number}/merge"):  "ok  ok  403 403 404 401 401",
    ("POST", "/api/v1/tenants/{tenant}/pulls/{number}/reviews"): "ok  ok  403 403 404 401 401",
    ("POST", "/api/v1/tenants/{tenant}/pulls/{number}/revert"): "ok  ok  403 403 404 401 401",
    ("PUT", "/api/v1/tenants/{tenant}/branches/{branch}/files/{path}"):
                                                                "ok  ok  403 403 404 401 401",
    ("PUT", "/api/v1/tenants/{tenant}/members/{person_id}"):    "ok  403 403 403 404 401 401",
    ("DELETE", "/api/v1/appliances/{appliance_id}/token"):      "ok  ok  403 403 404 401 401",
    ("DELETE", "/api/v1/me/tokens/{token_id}"):                 "ok  ok  ok  ok  ok  401 401",
    ("DELETE", "/api/v1/tenants/{tenant}/members/{person_id}"): "ok  403 403 403 404 401 401",
}


def expected(method: str, path: str, role: str) -> int | str:
    cell = EXPECTED[(method, path)].split()[ROLES.index(role)]
    return "allow" if cell == "ok" else int(cell)


def url(world: World, path: str, tenant: str = "acme") -> str:
    return (path.replace("{tenant}", tenant)
            .replace("{person_id}", str(world.person_ids["customer"]))
            .replace("{appliance_id}", world.appliance_ids[f"{tenant}/{APPLIANCE}"])
            .replace("{run_id}", str(world.run_ids[tenant]))
            .replace("{support_id}", str(world.support_ids[tenant]))
            # the token the same role's POST /me/tokens made just before (ids restart per test)
            .replace("{token_id}", "1")
            .replace("{number}", str(_PULL_FOR.get(path, 1)))
            .replace("{branch}", "edits").replace("{path}", "users.yaml"))


# Seeded pull requests (tests/api/pullseed.py): #1 mergeable (merged, then reverted, by
# the roles allowed to), #2 open to close, #3 open to review.
_PULL_FOR = {"/api/v1/tenants/{tenant}/pulls/{number}/close": 2,
             "/api/v1/tenants/{tenant}/pulls/{number}/reviews": 3}


async def call(client: AsyncTestClient, world: World, method: str, path: str, who: str,
               tenant: str = "acme"):
    body = BODIES.get((method, path))
    if (method, path) == ("POST", "/api/v1/heartbeat"):
        body = beat(1)
    if (method, path) == ("POST", "/api/v1/auth/refresh"):
        login = await client.post("/api/v1/auth/token",
                                  json={"username": "customer", "password": PASSWORD})
        body = {"refresh_token": login.json()["refresh_token"]}
    return await client.request(method, url(world, path, tenant), headers=world.auth(who),
                                json=body if body is not None or method in ("POST", "PUT", "PATCH")
                                else None)


def test_every_route_has_a_rule_and_every_rule_a_route(settings) -> None:
    app = create_app(settings, migrate=False)
    ops = operations(app)
    assert all(permission in PERMISSIONS for _, _, permission in ops), ops
    # git over HTTP is not in the OpenAPI document; tests/api/test_git_http.py covers it;
    # nor is the console (its own entries: the login page and the landing redirect),
    # tests/ui/test_pages.py covers it
    assert {p for _, _, p in ops} | {"metrics", "git.read", "git.push", "ui.public",
                                     "ui.session"} == set(PERMISSIONS)
    assert set(BODIES) <= {(m, p) for m, p, _ in ops}
    assert set(EXPECTED) == {(m, p) for m, p, _ in ops}, "a route without a written expectation"


@pytest.mark.parametrize("role", ROLES)
async def test_permission_table(client, world, settings, role) -> None:
    app = create_app(settings, migrate=False)
    mismatches = []
    for method, path, _permission in operations(app):
        want = expected(method, path, role)
        response = await call(client, world, method, path, role)
        got = "allow" if 200 <= response.status_code < 300 else response.status_code
        if got != want:
            mismatches.append((method, path, role, want, got, response.text[:200]))
    assert mismatches == []


TABLES = ["tenants", "people", "memberships", "appliances", "appliance_tokens",
          "observed_latest", "observed_history", "appliance_status", "reconcile_runs",
          "run_events", "pull_requests", "support_requests", "tasks"]


async def snapshot(world: World) -> dict[str, Any]:
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        counts = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}
        counts["live_tokens"] = await conn.fetchval(
            "SELECT count(*) FROM appliance_tokens WHERE revoked_at IS NULL")
        counts["roles"] = [tuple(r) for r in await conn.fetch(
            "SELECT person_id, tenant_id, role FROM memberships ORDER BY 1, 2")]
        counts["people"] = [tuple(r) for r in await conn.fetch(
            "SELECT id, disabled, is_admin, password_hash FROM people ORDER BY id")]
        audit = await conn.fetch("SELECT outcome, tenant_id FROM audit_events")
    finally:
        await conn.close()
    return {"counts": counts, "audit": [tuple(r) for r in audit]}


@pytest.mark.parametrize("who", ["other-operator", "other-appliance"])
async def test_cross_tenant_probe_is_404_and_stores_nothing(client, world, settings, who) -> None:
    app = create_app(settings, migrate=False)
    scoped = [(m, p, perm) for m, p, perm in operations(app)
              if PERMISSIONS[perm].scope in ("tenant", "appliance", "run", "support")]
    assert len(scoped) >= 8
    before = await snapshot(world)
    for method, path, permission in scoped:
        response = await call(client, world, method, path, who)
        allowed_kind = ("appliance" in PERMISSIONS[permission].roles) == (who == "other-appliance")
        want = 404 if allowed_kind or who == "other-operator" else 401
        assert response.status_code == want, (method, path, response.text)
        assert "acme" not in response.text.lower().replace("/acme", "")
    after = await snapshot(world)
    assert after["counts"] == before["counts"]
    new_audit = after["audit"][len(before["audit"]):]
    assert all(outcome == "denied" and tenant is None for outcome, tenant in new_audit)
