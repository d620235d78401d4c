"""One path from a revision to a plan: the diff route, the heartbeat trigger and the
reconciler give the same plan for the same inputs.

Each row stores one heartbeat for ``acme/front-office`` and then asks all three:
``GET /api/v1/appliances/{id}/diff`` through the real app, ``HeartbeatTrigger.plan``
for that heartbeat, and a reconcile pass (auto-sync and self-heal off, so nothing
runs; the pass leaves its plan on the member). The trigger judges a heartbeat
without the stored inventory, so it leaves out pending vault values by design
("secret changed" items); everything else must be identical.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from engine.execution.ansible import AnsibleExecutor
from engine.reconcile.queue import ReconcileQueue
from engine.reconcile.reconciler import Member, Reconciler
from engine.reconcile.source import DesiredSource
from engine.reconcile.triggers import HeartbeatTrigger
from engine.repos.reader import SnapshotReader
from engine.repos.store import RepoStore, signature
from schemas.heartbeat import ObservedState
from schemas.plan import Plan
from tests.reconcile.conftest import APPLIANCE, TENANT, Tenant

FIXTURES = Path(__file__).resolve().parents[1] / "planning" / "fixtures"
SECRET = "secret changed"


def _observed(name: str) -> ObservedState:
    return ObservedState.model_validate(yaml.safe_load((FIXTURES / name).read_text()))


def _without_secrets(plan: Plan) -> Plan:
    return Plan.of(appliance=plan.appliance, revision=plan.revision,
                   items=[i for i in plan.items if i.reason != SECRET], extras=plan.extras)


CASES = [
    # (id, observed, domains the plan changes, secret items, unmanaged extras)
    ("empty-report", ObservedState(), ("users", "pki", "dns", "samba", "mail"), 1, 0),
    ("another-office", _observed("observed_office.yaml"),
     ("users", "pki", "dns", "samba", "mail"), 1, 15),  # 3 of them Samba accounts
]


@pytest.mark.parametrize(("observed", "domains", "secrets", "extras"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_three_callers_one_plan(tenant: Tenant, redis: Redis, observed: ObservedState,
                                      domains: tuple[str, ...], secrets: int,
                                      extras: int) -> None:
    await tenant.store_heartbeat(observed, received_at=datetime.now(UTC))
    settings = tenant.settings

    app = create_app(settings, migrate=False, pool_size=2)
    async with AsyncTestClient(app=app) as client:
        answer = await client.get(f"/api/v1/appliances/{tenant.appliance_id}/diff",
                                  headers={"Authorization": f"Bearer {tenant.admin_jwt}"})
    assert answer.status_code == 200, answer.text
    from_route = Plan.model_validate(answer.json())

    queue = ReconcileQueue(redis)
    source = DesiredSource(store=RepoStore(settings.repos_dir), reader=SnapshotReader())
    trigger = HeartbeatTrigger(queue=queue, redis=redis, source=source)
    try:
        from_trigger = trigger.plan(TENANT, APPLIANCE, observed, head=tenant.head)
    finally:
        await trigger.close()

    member = Member(name=APPLIANCE, claim=None)
    reconciler = Reconciler(settings=settings, pool=tenant.pool, redis=redis, queue=queue,
                            reader=SnapshotReader(), worker_id="test",
                            executor=AnsibleExecutor(data_dir=settings.data_dir))
    report = await reconciler.reconcile(TENANT, [member])
    assert report.run_ids == []  # auto-sync and self-heal are off: nothing ran
    from_reconciler = member.plan

    assert from_route == from_reconciler
    assert from_trigger == _without_secrets(from_reconciler)
    assert from_route.revision == tenant.head
    assert from_route.appliance == f"{TENANT}/{APPLIANCE}"
    assert from_route.domains_changed == domains
    assert sum(1 for i in from_route.items if i.reason == SECRET) == secrets
    assert sum(1 for e in from_route.extras if not e.managed) == extras


async def test_preview_plan_of_another_revision(tenant: Tenant) -> None:
    """What a pull request's head would do: ``preview_plan`` at a commit that is not the
    head of main (here: main has moved on since) plans that commit, not main."""
    store = RepoStore(tenant.settings.repos_dir)
    path = "appliances/front-office.yaml"
    text = store.open(TENANT).revparse_single(f"{tenant.head}:{path}").data.decode()
    record = "          - {name: printer, type: A, address: 192.168.10.40}\n"
    assert record in text
    newer = store.commit_files(
        TENANT, {path: text.replace(record, "").encode()}, message="drop the printer",
        author=signature("Test Lead", "lead@example.org"), expected_head=tenant.head)
    await tenant.store_heartbeat(ObservedState(), received_at=datetime.now(UTC))
    source = DesiredSource(store=store, reader=SnapshotReader())
    printer = ("zones", "brightsmile.example", "records", "printer.brightsmile.example. A "
               "192.168.10.40")
    async with tenant.pool.acquire() as conn:
        at_old = await source.preview_plan(conn, tenant=TENANT, appliance=APPLIANCE,
                                           revision=tenant.head)
        at_main = await source.preview_plan(conn, tenant=TENANT, appliance=APPLIANCE)
    assert (at_old.revision, at_main.revision) == (tenant.head, newer)
    assert printer in [i.path for i in at_old.items]
    assert printer not in [i.path for i in at_main.items]
