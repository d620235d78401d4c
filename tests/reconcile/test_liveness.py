"""Workers seen (``engine.reconcile.liveness``) and leases of dead workers ended at once
(``ReconcileQueue.expire``), on a real Redis."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from engine.db import runs as run_db
from engine.reconcile.liveness import beat, fleet_liveness, forget
from engine.reconcile.queue import ReconcileQueue
from engine.reconcile.reaper import reap
from engine.reconcile.reconciler import LOCK_NAMESPACE, LOCK_SQL
from tests.reconcile.conftest import APPLIANCE, TENANT, Tenant


async def test_no_worker_ever_seen(redis: Redis) -> None:
    liveness = await fleet_liveness(redis)
    assert (liveness.alive, liveness.last_beat_age, liveness.stale) == (0, None, True)
    assert liveness.describe() == "no worker has been seen"


async def test_a_worker_is_alive_until_it_misses_two_beats(redis: Redis) -> None:
    await beat(redis, "w1", interval=0.2)
    await beat(redis, "w2", interval=10)
    liveness = await fleet_liveness(redis)
    assert (liveness.alive, liveness.stale, liveness.describe()) == (
        2, False, "2 worker(s) alive")
    await asyncio.sleep(0.5)  # w1 missed two beats of 0.2 s; w2 has 20 s
    assert (await fleet_liveness(redis)).alive == 1
    await forget(redis, "w2")  # a clean stop leaves at once
    liveness = await fleet_liveness(redis)
    assert liveness.alive == 0 and liveness.stale
    assert liveness.last_beat_age is not None and 0.4 <= liveness.last_beat_age < 5
    assert liveness.describe().startswith("no worker alive for ")


async def test_expire_hands_a_dead_holders_key_out_at_once(redis: Redis) -> None:
    queue = ReconcileQueue(redis, lease_ms=60_000)
    await queue.add("acme/office")
    dead = await queue.claim("dead-worker")
    assert dead is not None
    await queue.add("acme/office")  # a heartbeat meanwhile: marked dirty, waits for the holder
    assert await queue.claim("w2") is None
    assert await queue.expire("acme/office") is True
    taken = await queue.claim("w2")
    assert taken is not None and taken.key == "acme/office" and taken.token > dead.token
    assert await queue.done(dead) is False  # the dead holder's token is fenced off
    assert await queue.expire("acme/other") is False  # nobody held it


async def test_the_reaper_takes_a_run_only_from_a_worker_gone_from_both(
        tenant: Tenant, redis: Redis, tmp_path: Path) -> None:
    """A ``running`` run with its lock free is interrupted and its appliance queued again
    only once its worker has also stopped beating; a pass holding the lock keeps it."""
    queue = ReconcileQueue(redis)
    async with tenant.pool.acquire() as conn:
        tenant_id = await conn.fetchval("SELECT id FROM tenants WHERE name = $1", TENANT)
        run_id = await run_db.create_run(
            conn, tenant_id=tenant_id, appliance_ids=[tenant.appliance_id], revision=tenant.head,
            plan={}, check_mode=False, trigger="NewRevision", worker_id="w-1")
    await queue.add(f"{TENANT}/{APPLIANCE}")
    held = await queue.claim("w-1")
    assert held is not None

    await beat(redis, "w-1", interval=30)  # alive in Redis, its session gone: keeps the run
    assert await reap(tenant.pool, redis, queue, runs_dir=tmp_path) == []

    await forget(redis, "w-1")
    async with tenant.pool.acquire() as holder:  # a live pass holds the lock: keeps the run
        assert await holder.fetchval(LOCK_SQL, LOCK_NAMESPACE, str(tenant.appliance_id))
        assert await reap(tenant.pool, redis, queue, runs_dir=tmp_path) == []
        await holder.execute("SELECT pg_advisory_unlock_all()")

    assert await reap(tenant.pool, redis, queue, runs_dir=tmp_path) == [run_id]
    async with tenant.pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM reconcile_runs WHERE id = $1",
                                   run_id) == "interrupted"
    again = await queue.claim("w-2")  # the dead worker's lease was ended: handed out at once
    assert again is not None and again.key == f"{TENANT}/{APPLIANCE}"
    assert await reap(tenant.pool, redis, queue, runs_dir=tmp_path) == []
