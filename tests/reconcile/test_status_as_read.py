"""Status tells the truth while work goes on and while things are broken (issue 10, item 3).

Each test reads status the way an operator does, through the real app's
``GET /api/v1/tenants/acme/appliances`` (what ``hearth app list`` prints) or
``GET /api/v1/appliances/{id}``, on real PostgreSQL, Redis and git:

- a run's appliances are Progressing / RunInProgress naming the run within a
  second of the run row being created, while Ansible still works;
- a heartbeat that shows drift is OutOfSync with the drift as soon as it is
  stored, before any pass;
- a new revision of main not applied yet is OutOfSync naming it; an invalid
  head shows SourceValid=False with file:line:col in the list;
- Missing follows the heartbeat's age when read, not when the last pass ran;
- with auto_sync off, the Ready condition says the revision is waiting for a
  manual sync.

The stored "converged" rows below are what a pass writes (``upsert_status``),
set directly so each test starts from a known status.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from engine.db import runs as run_db
from engine.execution.ansible import AnsibleExecutor
from engine.reconcile.queue import ReconcileQueue
from engine.reconcile.reconciler import Member, Reconciler
from engine.repos.reader import SnapshotReader
from engine.repos.store import RepoStore, signature
from schemas.heartbeat import ObservedState
from tests.reconcile.conftest import APPLIANCE, TENANT, Tenant

PATH = "appliances/front-office.yaml"
VAULT_PASSWORD = "hearth-demo-vault-password"
PRINTER = "          - {name: printer, type: A, address: 192.168.10.40}\n"


@pytest.fixture
async def client(tenant: Tenant) -> AsyncIterator[AsyncTestClient]:
    app = create_app(tenant.settings, migrate=False, pool_size=2)
    async with AsyncTestClient(app=app) as test_client:
        test_client.headers["Authorization"] = f"Bearer {tenant.admin_jwt}"
        yield test_client


async def _listed(client: AsyncTestClient) -> dict[str, Any]:
    response = await client.get(f"/api/v1/tenants/{TENANT}/appliances")
    assert response.status_code == 200, response.text
    (item,) = [i for i in response.json() if i["name"] == APPLIANCE]
    return item["status"]


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status["conditions"] if c["type"] == type_), None)


async def _store_converged(tenant: Tenant, revision: str) -> None:
    """The row a pass writes for a converged appliance at ``revision``."""
    now = datetime.now(UTC).isoformat()
    async with tenant.pool.acquire() as conn:
        await run_db.upsert_status(
            conn, tenant.appliance_id, sync="Synced", health="Healthy",
            conditions=[{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded",
                         "message": "the appliance matches desired state",
                         "last_transition": now, "desired_revision": revision,
                         "applied_revision": revision}],
            desired_revision=revision, applied_revision=revision, observed_sequence=None,
            inventory={}, plan_hash=None, consecutive_failures=0, last_run_id=None)


def _reconciler(tenant: Tenant, redis: Redis, roots: Path | None = None) -> Reconciler:
    # The example repo's vault password, so a run gets as far as Ansible.
    settings = tenant.settings.model_copy(update={"ansible_vault_password": VAULT_PASSWORD})
    return Reconciler(settings=settings, pool=tenant.pool, redis=redis,
                      queue=ReconcileQueue(redis), reader=SnapshotReader(),
                      executor=AnsibleExecutor(data_dir=tenant.settings.data_dir, timeout=120),
                      worker_id="test", roots_dir=roots)


async def test_a_run_in_progress_shows_within_a_second(tenant: Tenant, redis: Redis,
                                                       client: AsyncTestClient,
                                                       tmp_path: Path) -> None:
    await tenant.store_heartbeat(ObservedState(), received_at=datetime.now(UTC))
    async with tenant.pool.acquire() as conn:
        run_id = await run_db.create_run(
            conn, tenant_id=(await conn.fetchval("SELECT id FROM tenants WHERE name = $1",
                                                 TENANT)),
            appliance_ids=[tenant.appliance_id], revision=tenant.head, plan={},
            check_mode=False, trigger="manual", worker_id=None, status="queued")
    # A directory that is no appliance root: a real Ansible run that fails after seconds.
    (tmp_path / "roots" / TENANT / APPLIANCE).mkdir(parents=True)
    reconciler = _reconciler(tenant, redis, tmp_path / "roots")
    pass_ = asyncio.create_task(reconciler.reconcile(TENANT, [Member(APPLIANCE, None)]))
    started: float | None = None
    seen: dict[str, Any] | None = None
    while not pass_.done():
        async with tenant.pool.acquire() as conn:
            run = await run_db.get_run(conn, run_id)
        if run["status"] == "running" and started is None:
            started = time.monotonic()
        status = await _listed(client)
        if status["health"] == "Progressing" and started is not None:
            seen = status
            break
        await asyncio.sleep(0.05)
    waited = time.monotonic() - started if started is not None else None
    report = await pass_
    async with tenant.pool.acquire() as conn:
        run = await run_db.get_run(conn, run_id)
    assert seen is not None, ("the run ended before any Progressing status was shown: "
                              f"{report}, run {run['status']}: {run['error']}")
    assert waited is not None and waited < 1.0
    ready = _condition(seen, "Ready")
    assert ready is not None and ready["reason"] == "RunInProgress"
    assert ready["message"].startswith(f"run {run_id} applying revision {tenant.head[:12]}")
    reconciling = _condition(seen, "Reconciling")
    assert reconciling is not None and reconciling["status"] == "True"


async def test_drift_shows_as_soon_as_the_heartbeat_arrives(tenant: Tenant,
                                                            client: AsyncTestClient) -> None:
    await _store_converged(tenant, tenant.head)
    assert (await _listed(client))["sync"] == "Synced"
    await asyncio.sleep(0.01)
    await tenant.store_heartbeat(ObservedState(), received_at=datetime.now(UTC))
    status = await _listed(client)
    assert (status["sync"], status["health"]) == ("OutOfSync", "Healthy")
    ready = _condition(status, "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "DriftDetected")
    assert ready["message"].startswith("the appliance differs from desired state: ")
    assert "users" in ready["message"]


async def test_a_new_revision_not_applied_is_pending(tenant: Tenant,
                                                     client: AsyncTestClient) -> None:
    await tenant.store_heartbeat(ObservedState(), received_at=datetime.now(UTC))
    await asyncio.sleep(0.01)
    await _store_converged(tenant, tenant.head)
    assert (await _listed(client))["sync"] == "Synced"  # the heartbeat is older than the row
    store = RepoStore(tenant.settings.repos_dir)
    text = store.open(TENANT).revparse_single(f"{tenant.head}:{PATH}").data.decode()
    newer = store.commit_files(TENANT, {PATH: text.replace(PRINTER, "").encode()},
                               message="drop the printer", expected_head=tenant.head,
                               author=signature("Test Lead", "lead@example.org"))
    await asyncio.sleep(1.1)  # the API's head cache
    status = await _listed(client)
    assert (status["sync"], status["desired_revision"], status["applied_revision"]) == (
        "OutOfSync", newer, tenant.head)
    ready = _condition(status, "Ready")
    assert ready is not None and ready["reason"] == "RevisionPending"
    assert ready["message"].startswith(f"revision {newer[:12]} of main is not applied yet: ")


async def test_an_invalid_head_shows_in_the_list(tenant: Tenant, client: AsyncTestClient) -> None:
    await tenant.store_heartbeat(ObservedState(), received_at=datetime.now(UTC))
    await _store_converged(tenant, tenant.head)
    store = RepoStore(tenant.settings.repos_dir)
    store.commit_files(TENANT, {PATH: b"kind: Appliance\nmetadata: [\n"},
                       message="break it", expected_head=tenant.head,
                       author=signature("Test Lead", "lead@example.org"))
    await asyncio.sleep(1.1)
    status = await _listed(client)
    source = _condition(status, "SourceValid")
    assert source is not None and source["status"] == "False"
    assert "of main is invalid and was not applied: appliances/front-office.yaml:3:1:" in \
        source["message"], source["message"]
    assert status["desired_revision"] == tenant.head  # the last good revision stays


async def test_missing_is_judged_when_read(tenant: Tenant, client: AsyncTestClient) -> None:
    await tenant.store_heartbeat(ObservedState(),
                                 received_at=datetime.now(UTC) - timedelta(seconds=100))
    await _store_converged(tenant, tenant.head)
    status = await _listed(client)
    assert status["health"] == "Missing"
    ready = _condition(status, "Ready")
    assert ready is not None and ready["reason"] == "HeartbeatMissing"


async def test_auto_sync_off_says_it_waits_for_a_manual_sync(tenant: Tenant, redis: Redis,
                                                             client: AsyncTestClient) -> None:
    await tenant.store_heartbeat(ObservedState(), received_at=datetime.now(UTC))
    await _reconciler(tenant, redis).reconcile(TENANT, [Member(APPLIANCE, None)])
    response = await client.get(f"/api/v1/appliances/{tenant.appliance_id}")
    status = response.json()["status"]
    ready = _condition(status, "Ready")
    assert ready is not None and ready["reason"] == "AutoSyncDisabled"
    waiting = f"revision {tenant.head[:12]} is waiting for a manual sync (auto_sync off)"
    assert ready["message"].endswith(waiting)
    assert waiting in status["message"]
