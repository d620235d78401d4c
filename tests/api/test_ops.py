"""Operations endpoints, problem details for framework errors, request ids, the docs UI."""

from __future__ import annotations

from typing import Annotated

import pytest

PROBLEM = "application/problem+json"


async def test_health_and_ready(client) -> None:
    assert (await client.get("/health")).json() == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"postgresql": "ok", "redis": "ok", "repos": "ok"}


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/no/such/route", 404),
    ("DELETE", "/health", 405),
    ("GET", "/api/v1/appliances/not-a-uuid", 404),
], ids=["unknown-route", "wrong-method", "malformed-id"])
async def test_framework_errors_are_problem_details(client, world, method, path, status) -> None:
    response = await client.request(method, path, headers=world.auth("operator"))
    assert response.status_code == status
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == status and body["type"].startswith("https://hearth.dev/problems/")


async def test_invalid_body_is_400_problem_without_echoing_values(client, world) -> None:
    response = await client.post("/api/v1/auth/token",
                                 json={"username": "admin", "password": 42, "extra": "s3cr3t"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "s3cr3t" not in response.text and response.json()["errors"]


async def test_request_id_is_echoed_or_made(client) -> None:
    given = await client.get("/health", headers={"X-Request-ID": "abc-123-def"})
    assert given.headers["x-request-id"] == "abc-123-def"
    made = await client.get("/health", headers={"X-Request-ID": "bad id!"})
    assert len(made.headers["x-request-id"]) == 32


async def test_openapi_document_and_browsable_ui(client) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    assert "/api/v1/heartbeat" in doc["paths"]
    ui = await client.get("/schema/swagger")
    assert ui.status_code == 200 and "swagger" in ui.text.lower()


async def test_metrics_expose_http_and_hearth_counters(client, world) -> None:
    await client.get("/health")
    text = (await client.get("/metrics")).text
    assert "hearth_http_requests_total" in text
    assert "hearth_heartbeats_accepted_total" in text
    assert "hearth_heartbeats_rejected_total" in text


async def test_text_the_database_refuses_is_a_400_problem_from_any_route(settings) -> None:
    """The backstop behind the models: PostgreSQL's own refusal of a NUL (text or jsonb)
    becomes 400 problem details, with the statement (and so any write) undone."""
    import asyncpg
    from litestar import Litestar, post
    from litestar.params import JSONBody, PathParameter
    from litestar.testing import AsyncTestClient

    from api.errors import EXCEPTION_HANDLERS

    @post("/echo/{cast:str}")
    async def echo(cast: Annotated[str, PathParameter()], data: JSONBody[dict[str, str]]) -> dict[str, str]:
        conn = await asyncpg.connect(settings.database_url)
        try:
            value = data["v"] if cast == "text" else '{"v": "' + data["v"] + '"}'
            sql = "SELECT $1::text" if cast == "text" else "SELECT ($1::text)::jsonb::text"
            return {"v": await conn.fetchval(sql, value)}
        finally:
            await conn.close()

    app = Litestar([echo], exception_handlers=EXCEPTION_HANDLERS)
    async with AsyncTestClient(app=app) as client:
        ok = await client.post("/echo/text", json={"v": "fine"})
        assert ok.status_code == 201 and ok.json() == {"v": "fine"}
        for cast, value in (("text", "a\u0000b"), ("jsonb", "a\\u0000b")):
            refused = await client.post(f"/echo/{cast}", json={"v": value})
            assert refused.status_code == 400, (cast, refused.text)
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert refused.json()["type"].endswith("/invalid-request")
