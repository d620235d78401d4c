"""The worker judges Missing on the one heartbeat interval of Settings (30 s by default).

It used to judge on its own 60 s while agents reported every 30 s: an appliance
silent for 100 s (three missed heartbeats) still showed Healthy.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from engine.db import runs as run_db
from engine.execution.ansible import AnsibleExecutor
from engine.reconcile.queue import ReconcileQueue
from engine.reconcile.reconciler import Member, Reconciler
from engine.repos.reader import SnapshotReader
from schemas.heartbeat import ObservedState
from tests.reconcile.conftest import APPLIANCE, TENANT, Tenant


async def _health_after_a_pass(tenant: Tenant, redis: Redis, *, silent: int) -> str:
    await tenant.store_heartbeat(ObservedState(),
                                 received_at=datetime.now(UTC) - timedelta(seconds=silent))
    reconciler = Reconciler(settings=tenant.settings, pool=tenant.pool, redis=redis,
                            queue=ReconcileQueue(redis), reader=SnapshotReader(),
                            executor=AnsibleExecutor(data_dir=tenant.settings.data_dir),
                            worker_id="test")
    await reconciler.reconcile(TENANT, [Member(name=APPLIANCE, claim=None)])
    async with tenant.pool.acquire() as conn:
        status = await run_db.get_status(conn, tenant.appliance_id)
    assert status is not None
    return status["health"]


async def test_three_missed_intervals_are_missing(tenant: Tenant, redis: Redis) -> None:
    assert await _health_after_a_pass(tenant, redis, silent=100) == "Missing"


async def test_two_missed_intervals_are_not(tenant: Tenant, redis: Redis) -> None:
    assert await _health_after_a_pass(tenant, redis, silent=60) == "Healthy"
