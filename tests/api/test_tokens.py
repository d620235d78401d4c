"""Personal access tokens: shown once, stored hashed, listed by hint, revocable, owner-only."""

from __future__ import annotations

import asyncpg

from engine.db.appliances import hash_token


async def test_create_list_revoke(client, world) -> None:
    made = await client.post("/api/v1/me/tokens", headers=world.auth("operator"),
                             json={"name": "laptop", "scope": "read", "expires_in_days": 30})
    assert made.status_code == 201
    body = made.json()
    token = body["token"]
    assert token.startswith("hth_pat_")
    assert (body["name"], body["scope"], body["hint"], body["revoked_at"]) == (
        "laptop", "read", token[-4:], None)
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        stored = await conn.fetchrow("SELECT token_hash, expires_at - created_at AS life "
                                     "FROM personal_tokens WHERE id = $1", body["id"])
        assert bytes(stored["token_hash"]) == hash_token(world.settings.secret_key, token)
        assert abs(stored["life"].total_seconds() - 30 * 86400) < 60
        listed = (await client.get("/api/v1/me/tokens", headers=world.auth("operator"))).json()
        assert [(t["id"], t["hint"]) for t in listed] == [(body["id"], token[-4:])]
        assert "token" not in listed[0]
        assert (await client.get("/api/v1/me/tokens", headers=world.auth("auditor"))).json() == []
        foreign = await client.delete(f"/api/v1/me/tokens/{body['id']}",
                                      headers=world.auth("auditor"))
        assert foreign.status_code == 404
        gone = await client.delete(f"/api/v1/me/tokens/{body['id']}",
                                   headers=world.auth("operator"))
        assert gone.status_code == 204
        revoked = await conn.fetchval("SELECT revoked_at FROM personal_tokens WHERE id = $1",
                                      body["id"])
        assert revoked is not None
        actions = [r["action"] for r in await conn.fetch(
            "SELECT action FROM audit_events WHERE action LIKE 'token.%' ORDER BY id")]
        assert actions == ["token.create", "token.revoke"]
    finally:
        await conn.close()


async def test_scope_is_read_or_write(client, world) -> None:
    answer = await client.post("/api/v1/me/tokens", headers=world.auth("operator"),
                               json={"scope": "admin"})
    assert answer.status_code == 400
