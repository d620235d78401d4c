"""The aggregate modules against real PostgreSQL: tenants, people, tokens, heartbeats."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import pytest

from engine.db import appliances, heartbeats, people, tenants
from engine.db.batch import MicroBatcher
from engine.errors import ConflictError, NotFoundError

SECRET = "s" * 32


async def _appliance(conn, tenant="acme", name="box1"):
    t = await tenants.get_tenant_by_name(conn, tenant)
    if t is None:
        t = await tenants.insert_tenant(conn, name=tenant, display_name=tenant.title())
    return await appliances.register_appliance(
        conn, tenant_id=t["id"], name=name, hostname=f"{name}.example.org", secret_key=SECRET)


def _row(appliance_id: uuid.UUID, sequence: int) -> heartbeats.HeartbeatRow:
    now = datetime.now(UTC)
    return heartbeats.HeartbeatRow(
        appliance_id=appliance_id, sequence=sequence, sent_at=now, received_at=now,
        agent_version="1.0", applied_revision=None, observed=json.dumps({"dns": None}),
        services="[]", facts=json.dumps({"seq": sequence}))


async def test_tenant_names_are_unique(pool) -> None:
    async with pool.acquire() as conn:
        row = await tenants.insert_tenant(conn, name="acme", display_name="Acme")
        assert row["validation_status"] == "unknown"
        with pytest.raises(ConflictError):
            await tenants.insert_tenant(conn, name="acme", display_name="Other")
        assert (await tenants.get_tenant_by_name(conn, "acme"))["id"] == row["id"]
        assert await tenants.get_tenant_by_name(conn, "nope") is None
        with pytest.raises(NotFoundError):
            await tenants.require_tenant(conn, "nope")


async def test_passwords_are_hashed_and_verified(pool) -> None:
    async with pool.acquire() as conn:
        await people.insert_person(conn, username="ada", password="correct horse battery")
        creds = await people.get_credentials(conn, "ada")
    assert creds is not None and "correct horse" not in creds["password_hash"]
    assert creds["password_hash"].startswith("$argon2id$")
    assert people.verify_password(creds["password_hash"], "correct horse battery")
    assert not people.verify_password(creds["password_hash"], "wrong")
    assert not people.verify_password(None, "anything")


async def test_tokens_are_stored_hashed_and_rotate_revokes(pool) -> None:
    async with pool.acquire() as conn:
        appliance, token = await _appliance(conn)
        assert token.startswith(appliances.TOKEN_PREFIX)
        stored = await conn.fetchval("SELECT token_hash FROM appliance_tokens")
        assert bytes(stored) == appliances.hash_token(SECRET, token)
        assert token.encode() not in bytes(stored)

        h1 = appliances.hash_token(SECRET, token)
        assert (await appliances.resolve_tokens(conn, [h1]))[h1]["appliance_id"] == appliance["id"]
        token2 = await appliances.rotate_token(
            conn, appliance_id=appliance["id"], secret_key=SECRET)
        h2 = appliances.hash_token(SECRET, token2)
        assert set(await appliances.resolve_tokens(conn, [h1, h2])) == {h2}
        assert await appliances.revoke_tokens(conn, appliance_id=appliance["id"]) == 1
        assert await appliances.resolve_tokens(conn, [h1, h2]) == {}


async def test_token_resolver_batches_and_sees_revocation(pool) -> None:
    async with pool.acquire() as conn:
        appliance, token = await _appliance(conn)
    resolver = appliances.TokenResolver(pool, secret_key=SECRET)
    found = await asyncio.gather(*(resolver.resolve(token) for _ in range(20)),
                                 resolver.resolve("hth_app_" + "x" * 43), resolver.resolve("junk"))
    assert all(f["appliance_id"] == appliance["id"] for f in found[:20])
    assert found[20:] == [None, None]
    async with pool.acquire() as conn:
        await appliances.revoke_tokens(conn, appliance_id=appliance["id"])
    assert await resolver.resolve(token) is None
    await resolver.close()


async def test_heartbeat_sequence_must_increase(pool) -> None:
    async with pool.acquire() as conn:
        (a, _), (b, _) = await _appliance(conn, name="a"), await _appliance(conn, name="b")
        first = await heartbeats.write_batch(conn, [_row(a["id"], 5), _row(b["id"], 1)])
        assert first == [True, True]
        # replay, older, newer; and two of one appliance in one batch, in arrival order
        result = await heartbeats.write_batch(
            conn, [_row(a["id"], 5), _row(a["id"], 4), _row(b["id"], 3), _row(b["id"], 2),
                   _row(a["id"], 6)])
        assert result == [False, False, True, False, True]
        assert (await heartbeats.latest(conn, a["id"]))["sequence"] == 6
        latest_b = await heartbeats.latest(conn, b["id"])
        assert latest_b["sequence"] == 3 and latest_b["facts"] == {"seq": 3}
        assert [h["sequence"] for h in await heartbeats.history(conn, a["id"])] == [6, 5]


async def test_history_is_bounded(pool) -> None:
    async with pool.acquire() as conn:
        a, _ = await _appliance(conn)
        for seq in range(1, 11):
            await heartbeats.write_batch(conn, [_row(a["id"], seq)], history_limit=3)
        assert [h["sequence"] for h in await heartbeats.history(conn, a["id"])] == [10, 9, 8]


async def test_unknown_appliance_is_not_stored(pool) -> None:
    async with pool.acquire() as conn:
        assert await heartbeats.write_batch(conn, [_row(uuid.uuid4(), 1)]) == [False]


async def test_writer_under_concurrency_accepts_each_sequence_once(pool) -> None:
    async with pool.acquire() as conn:
        a, _ = await _appliance(conn)
    writer = heartbeats.HeartbeatWriter(pool, linger=0.001)
    # every sequence sent three times, concurrently: exactly one of each three wins
    results = await asyncio.gather(*(writer.store(_row(a["id"], s)) for s in range(1, 31)
                                     for _ in range(3)))
    await writer.close()
    assert sum(results) <= 30
    async with pool.acquire() as conn:
        assert (await heartbeats.latest(conn, a["id"]))["sequence"] == 30
        stored = [h["sequence"] for h in await heartbeats.history(conn, a["id"], limit=100)]
    assert len(stored) == len(set(stored)) == sum(results)


async def test_micro_batcher_groups_and_isolates_failures() -> None:
    sizes: list[int] = []

    async def flush(items: list[int]) -> list[int | BaseException]:
        sizes.append(len(items))
        await asyncio.sleep(0.01)
        return [ValueError(i) if i == 3 else i * 2 for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(flush, linger=0, max_in_flight=1)
    results = await asyncio.gather(*(batcher.submit(i) for i in range(10)),
                                   return_exceptions=True)
    await batcher.close()
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [i * 2 for i in range(10) if i != 3]
    assert len(sizes) < 10
