"""Issue 16, classes 1 and 8: no 500 from input; headers and content types.

On the real app (PostgreSQL, Redis, the example repos): deeply nested JSON,
ids beyond 64 bits and JWT subjects beyond 64 bits are 4xx problems; every
answer says ``nosniff``, token answers say ``no-store``, HTML pages carry a
strict CSP and ``X-Frame-Options: DENY``; a JSON route refuses a body that
is not declared JSON (415); request models do not coerce ``"123"`` or
``"yes"``. The property-based sweep over every route is in
``tests/api/test_schemathesis.py``.
"""

from __future__ import annotations

import time

import jwt
import pytest

from api.auth import JWT_AUDIENCE, JWT_ISSUER
from tests.api.conftest import APPLIANCE, PASSWORD
from tests.api.test_heartbeat import beat

DEEP = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000


@pytest.mark.parametrize("body", [DEEP, DEEP_OBJECT], ids=["array", "object"])
@pytest.mark.parametrize("who,method,path", [
    ("anonymous", "POST", "/api/v1/auth/token"),
    ("admin", "POST", "/api/v1/people"),
    ("operator", "POST", "/api/v1/tenants/acme/pulls"),
    ("appliance", "POST", "/api/v1/heartbeat"),
], ids=["login", "people", "pulls", "heartbeat"])
async def test_deeply_nested_json_is_400_not_500(client, world, who, method, path, body) -> None:
    response = await client.request(method, path, content=body,
                                    headers={**world.auth(who),
                                             "Content-Type": "application/json"})
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "nests deeper than 64 levels" in response.json()["detail"]


async def test_nesting_at_the_bound_is_decoded(client, world) -> None:
    """64 levels pass the bound (and then fail the model, as any wrong shape does: 400
    with field errors, not the nesting message)."""
    body = b'{"username": ' + b"[" * 63 + b"]" * 63 + b', "password": "x"}'
    response = await client.post("/api/v1/auth/token", content=body,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert "nests deeper" not in response.json()["detail"]


@pytest.mark.parametrize("path", [
    "/api/v1/people/9223372036854775808",
    "/api/v1/people/99999999999999999999999",
    "/api/v1/people/-9223372036854775809",
    "/api/v1/tenants/acme/members/18446744073709551616",
    "/api/v1/tenants/acme/pulls/9223372036854775808",
    "/api/v1/tenants/acme/pulls/2147483648",
    "/api/v1/tenants/acme/pulls/2147483648/diff",
])
async def test_ids_beyond_what_the_database_holds_are_4xx(client, world, path) -> None:
    response = await client.get(path, headers=world.auth("admin"))
    assert response.status_code in (400, 404, 405), response.text[:300]
    assert response.status_code != 405 or "members" in path


@pytest.mark.parametrize("sub", ["9223372036854775808", "-1", "0",
                                 "340282366920938463463374607431768211456"])
async def test_a_jwt_subject_beyond_64_bits_is_401(client, world, sub) -> None:
    now = int(time.time())
    token = jwt.encode({"sub": sub, "aud": JWT_AUDIENCE, "iss": JWT_ISSUER, "iat": now,
                        "nbf": now, "exp": now + 60}, world.settings.jwt_secret,
                       algorithm="HS256")
    response = await client.get("/api/v1/tenants", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text[:300]


# --- class 8 ------------------------------------------------------------------------


async def test_token_answers_are_no_store_and_every_answer_is_nosniff(client, world) -> None:
    login = await client.post("/api/v1/auth/token",
                              json={"username": "operator", "password": PASSWORD})
    assert login.status_code == 200
    assert login.headers["cache-control"] == "no-store"
    rotated = await client.post(
        f"/api/v1/appliances/{world.appliance_ids['acme/' + APPLIANCE]}/token",
        headers=world.auth("operator"))
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["cache-control"] == "no-store"
    for response in (login, rotated, await client.get("/health"),
                     await client.get("/no/such/route"),
                     await client.get("/api/v1/tenants"),
                     await client.get("/schema/openapi.json")):
        assert response.headers["x-content-type-options"] == "nosniff", response.url


@pytest.mark.parametrize("path", ["/schema/swagger", "/schema"])
async def test_html_pages_carry_a_strict_csp_and_deny_framing(client, world, path) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["x-frame-options"] == "DENY"
    csp = response.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'; ")
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert int(response.headers["content-length"]) == len(response.content)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
async def test_a_json_route_refuses_a_body_not_declared_json(client, world, content_type) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post("/api/v1/auth/token", headers=headers,
                                 content=f'{{"username": "operator", "password": "{PASSWORD}"}}')
    assert response.status_code == 415, response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_json_suffix_media_type_is_json(client, world) -> None:
    response = await client.post("/api/v1/auth/token",
                                 headers={"Content-Type": "application/problem+json"},
                                 content=f'{{"username": "operator", "password": "{PASSWORD}"}}')
    assert response.status_code == 200


@pytest.mark.parametrize("who,path,body", [
    ("appliance", "/api/v1/heartbeat", None),  # built at call time (fresh sent_at)
    ("admin", "/api/v1/people", {"username": "newcomer", "password": PASSWORD,
                                 "is_admin": "yes"}),
    ("operator", "/api/v1/appliances/{id}/sync", {"dry_run": "true"}),
    ("operator", "/api/v1/me/tokens", {"name": "laptop", "scope": "read",
                                       "expires_in_days": "30"}),
], ids=["heartbeat-sequence", "person-is-admin", "sync-dry-run", "token-days"])
async def test_request_models_do_not_coerce_strings(client, world, who, path, body) -> None:
    if body is None:
        body = {**beat(1), "sequence": "123"}
    path = path.replace("{id}", world.appliance_ids["acme/" + APPLIANCE])
    response = await client.post(path, json=body, headers=world.auth(who))
    assert response.status_code == 400, response.text[:300]
