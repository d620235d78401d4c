"""A run that cannot start because the desired state cannot be rendered is a permanent
failure; the run row, the member and the status say why. No appliance root is needed:
the vault values are refused before Ansible starts."""

from __future__ import annotations

from redis.asyncio import Redis

from engine.db import runs as run_db
from engine.execution.ansible import AnsibleExecutor
from engine.reconcile.members import Member, Outcome, PermanentFailure
from engine.reconcile.queue import ReconcileQueue
from engine.reconcile.reconciler import Reconciler
from engine.repos.reader import SnapshotReader
from tests.reconcile.conftest import APPLIANCE, TENANT, Tenant


async def test_a_vault_value_that_does_not_decrypt_is_a_permanent_failure(
        tenant: Tenant, redis: Redis) -> None:
    # the example repo's vault values are not encrypted with this tenant's vault password
    async with tenant.pool.acquire() as conn:
        tenant_id = await conn.fetchval("SELECT id FROM tenants WHERE name = $1", TENANT)
        run_id = await run_db.create_run(
            conn, tenant_id=tenant_id, appliance_ids=[tenant.appliance_id], revision=tenant.head,
            plan={}, check_mode=False, trigger="manual", worker_id=None, status="queued")
    member = Member(name=APPLIANCE, claim=None)
    reconciler = Reconciler(settings=tenant.settings, pool=tenant.pool, redis=redis,
                            queue=ReconcileQueue(redis), reader=SnapshotReader(),
                            executor=AnsibleExecutor(data_dir=tenant.settings.data_dir),
                            worker_id="test")
    report = await reconciler.reconcile(TENANT, [member])
    assert report.run_ids == [run_id]
    assert report.outcomes == {APPLIANCE: Outcome.RETRY}
    assert member.decision is not None and member.decision.reason == "ManualSync"
    assert isinstance(member.failure, PermanentFailure)
    assert member.failure.message.startswith("cannot decrypt a vault value")
    async with tenant.pool.acquire() as conn:
        run = await run_db.get_run(conn, run_id)
        status = await run_db.get_status(conn, tenant.appliance_id)
    assert (run["status"], run["error"]) == ("failed", member.failure.message)
    assert run["results"] == {APPLIANCE: {"status": "not-run"}}
    assert status is not None and status["consecutive_failures"] == 1
    assert status["health"] == "Missing"  # no heartbeat yet: Missing outranks Degraded
