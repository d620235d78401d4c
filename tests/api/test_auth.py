"""People's credentials: login, JWT checks, lockout, and the wrong kind of token."""

from __future__ import annotations

import json
import time

import asyncpg
import jwt
import pytest

from api import ratelimit
from api.auth import JWT_AUDIENCE, JWT_ISSUER
from api.context import Limits
from tests.api.conftest import PASSWORD


async def _audit(world, action: str) -> list[str]:
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        rows = await conn.fetch("SELECT outcome FROM audit_events WHERE action = $1 ORDER BY id",
                                action)
    finally:
        await conn.close()
    return [r["outcome"] for r in rows]


async def test_login_issues_a_short_lived_jwt_for_the_api_audience(client, world) -> None:
    response = await client.post("/api/v1/auth/token",
                                 json={"username": "operator", "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    claims = jwt.decode(body["access_token"], world.settings.jwt_secret, algorithms=["HS256"],
                        audience=JWT_AUDIENCE)
    assert claims["sub"] == str(world.person_ids["operator"])
    assert 0 < body["expires_in"] <= 3600 and claims["exp"] - claims["iat"] == body["expires_in"]
    tenants = await client.get("/api/v1/tenants",
                               headers={"Authorization": f"Bearer {body['access_token']}"})
    assert [t["name"] for t in tenants.json()] == ["acme"]
    assert await _audit(world, "auth.login") == ["success"]


async def test_wrong_password_is_401_and_audited_without_the_password(client, world) -> None:
    response = await client.post("/api/v1/auth/token",
                                 json={"username": "operator", "password": "guess-guess-1"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await _audit(world, "auth.login") == ["failure"]
    import asyncpg

    conn = await asyncpg.connect(world.settings.database_url)
    try:
        dump = await conn.fetchval("SELECT json_agg(a)::text FROM audit_events a")
    finally:
        await conn.close()
    assert "guess-guess-1" not in dump


async def test_failed_logins_slow_the_failing_client_with_retry_after(client, world) -> None:
    # free failures, then one more that sets the first delay (api/throttle.py)
    for _ in range(Limits().login_free_failures + 1):
        r = await client.post("/api/v1/auth/token",
                              json={"username": "auditor", "password": "nope-nope-nope"})
        assert r.status_code == 401
    held = await client.post("/api/v1/auth/token",
                             json={"username": "auditor", "password": PASSWORD})
    assert held.status_code == 429
    assert held.headers["retry-after"] == "1"
    # the count lives in Redis: another user is not affected
    other = await client.post("/api/v1/auth/token",
                              json={"username": "customer", "password": PASSWORD})
    assert other.status_code == 200


class TestPerAddressLimit:
    @pytest.fixture
    def limits(self) -> Limits:
        return Limits(login_per_minute_per_address=3)

    async def test_login_is_rate_limited_per_source_address(self, client, world,
                                                            monkeypatch) -> None:
        # The limiter counts in windows aligned to the minute of its clock: stop that
        # clock 20 s into a window (1_699_999_980 is a multiple of 60), so the four
        # logins cannot straddle two windows and the wait it names is known.
        monkeypatch.setattr(ratelimit, "time", _FrozenClock(1_700_000_000))
        statuses = [(await client.post("/api/v1/auth/token",
                                       json={"username": "customer", "password": PASSWORD}))
                    for _ in range(4)]
        assert [r.status_code for r in statuses] == [200, 200, 200, 429]
        assert statuses[-1].headers["retry-after"] == "40"
        assert statuses[-1].headers["content-type"].startswith("application/problem+json")
        assert await _audit(world, "auth.login") == ["success", "success", "success"]


class _FrozenClock:
    """Stands in for the ``time`` module inside ``api.ratelimit``: a clock that stays put."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def _token(world, **overrides) -> str:
    now = int(time.time())
    claims = {"sub": str(world.person_ids["admin"]), "aud": JWT_AUDIENCE, "iss": JWT_ISSUER,
              "iat": now, "exp": now + 300} | overrides
    return jwt.encode(claims, world.settings.jwt_secret, algorithm="HS256")


@pytest.mark.parametrize("make", [
    lambda w: _token(w, exp=int(time.time()) - 60, iat=int(time.time()) - 400),
    lambda w: _token(w, aud="hearth-appliance"),
    lambda w: _token(w, iss="someone-else"),
    lambda w: jwt.encode({"sub": str(w.person_ids["admin"]), "aud": JWT_AUDIENCE,
                          "iss": JWT_ISSUER, "iat": int(time.time()),
                          "exp": int(time.time()) + 300}, None, algorithm="none"),
    lambda w: _token(w) + "x",
    lambda w: jwt.encode({"sub": "1", "aud": JWT_AUDIENCE, "iss": JWT_ISSUER,
                          "iat": int(time.time()), "exp": int(time.time()) + 300},
                         "another-secret-of-enough-length-0123456789", algorithm="HS256"),
    lambda w: w.appliance_tokens["acme/front-office"],
    lambda w: "hth_app_" + "A" * 43,
], ids=["expired", "wrong-audience", "wrong-issuer", "alg-none", "bad-signature",
        "other-key", "appliance-token-on-human-route", "unknown-appliance-token"])
async def test_bad_credentials_on_a_human_route_are_401(client, world, make) -> None:
    response = await client.get("/api/v1/tenants",
                                headers={"Authorization": f"Bearer {make(world)}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_person_jwt_on_the_appliance_route_is_401(client, world) -> None:
    response = await client.post("/api/v1/heartbeat", headers=world.auth("admin"), json={})
    assert response.status_code == 401


async def test_disabled_user_stops_at_once(client, world) -> None:
    assert (await client.get("/api/v1/tenants", headers=world.auth("operator"))).status_code == 200
    patch = await client.patch(f"/api/v1/people/{world.person_ids['operator']}",
                               headers=world.auth("admin"), json={"disabled": True})
    assert patch.status_code == 200 and patch.json()["disabled"] is True
    assert "password" not in patch.text
    assert (await client.get("/api/v1/tenants", headers=world.auth("operator"))).status_code == 401


@pytest.mark.parametrize("body", [
    {"username": "admin\u0000", "password": "whatever"},
    {"username": "admin", "password": "pass\u0000word"},
], ids=["username", "password"])
async def test_a_nul_character_in_the_login_is_400_not_500(client, world, body) -> None:
    response = await client.post("/api/v1/auth/token", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "NUL" in response.text


async def test_a_tenant_name_no_tenant_can_have_is_404_for_an_admin(client, world) -> None:
    for name in ("acme%00", "acme%0A"):
        response = await client.get(f"/api/v1/tenants/{name}", headers=world.auth("admin"))
        assert response.status_code == 404, (name, response.text)


async def test_a_disabled_person_cannot_log_in_with_the_right_password(client, world) -> None:
    patch = await client.patch(f"/api/v1/people/{world.person_ids['operator']}",
                               headers=world.auth("admin"), json={"disabled": True})
    assert patch.status_code == 200
    response = await client.post("/api/v1/auth/token",
                                 json={"username": "operator", "password": PASSWORD})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "access_token" not in response.text
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        rows = await conn.fetch("SELECT actor_kind, actor_id, outcome FROM audit_events "
                                "WHERE action = 'auth.login' ORDER BY id")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [("anonymous", "operator", "failure")]
    # The same password works again once re-enabled: the refusal was the flag, not the password.
    await client.patch(f"/api/v1/people/{world.person_ids['operator']}",
                       headers=world.auth("admin"), json={"disabled": False})
    again = await client.post("/api/v1/auth/token",
                              json={"username": "operator", "password": PASSWORD})
    assert again.status_code in (200, 201) and "access_token" in again.text


async def _denials(world) -> list[tuple]:
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT actor_kind, actor_id, tenant_id, action, outcome, target, details "
            "FROM audit_events WHERE action LIKE 'permission.denied:%' ORDER BY id")
    finally:
        await conn.close()
    return [(*tuple(r)[:6], json.loads(r["details"])) for r in rows]


async def test_each_denial_is_audited_with_who_what_where_and_why(client, world) -> None:
    appliance = world.appliance_ids["acme/front-office"]
    # a role the global rule does not list: 403, no tenant
    assert (await client.get("/api/v1/people", headers=world.auth("operator"))).status_code == 403
    # a role in the tenant the rule does not list: 403, the tenant named
    sync = await client.post(f"/api/v1/appliances/{appliance}/sync",
                             headers=world.auth("customer"), json={"dry_run": True})
    assert sync.status_code == 403
    # no role in the tenant: 404, and the audit row does not name the tenant
    other = await client.get(f"/api/v1/appliances/{appliance}", headers=world.auth("other-operator"))
    assert other.status_code == 404
    # a tenant that does not exist: the same 404, audited the same way (equal cost, no
    # existence told by timing)
    assert (await client.get("/api/v1/tenants/nosuch", headers=world.auth("operator"))
            ).status_code == 404
    assert await _denials(world) == [
        ("person", str(world.person_ids["operator"]), None, "permission.denied:people.list",
         "denied", "/api/v1/people", {"reason": "role"}),
        ("person", str(world.person_ids["customer"]), world.tenant_ids["acme"],
         "permission.denied:appliances.sync", "denied", f"/api/v1/appliances/{appliance}/sync",
         {"reason": "role"}),
        ("person", str(world.person_ids["other-operator"]), None,
         "permission.denied:appliances.get", "denied", f"/api/v1/appliances/{appliance}",
         {"reason": "not-found-or-not-member"}),
        ("person", str(world.person_ids["operator"]), None, "permission.denied:tenants.get",
         "denied", "/api/v1/tenants/nosuch", {"reason": "not-found-or-not-member"}),
    ]


async def test_an_unknown_appliance_token_is_named_in_the_answer(client, world) -> None:
    from tests.api.test_heartbeat import beat

    unknown = {"Authorization": "Bearer hth_app_" + "x" * 43}
    for path, body in (("/api/v1/heartbeat", beat(1)), ("/api/v1/tenants", None)):
        response = await client.request("POST" if body else "GET", path, json=body,
                                        headers=unknown)
        assert response.status_code == 401
        assert response.json()["detail"] == "unknown or revoked appliance token"
