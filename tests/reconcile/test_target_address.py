"""Ansible reaches the box the appliance is, not the box the tenant's YAML names.

A tenant controls its repository, so a YAML ``hostname`` pointing at another
box (another tenant's appliance) must never become the host the control plane
logs in to. These tests run a real reconcile pass (real PostgreSQL, Redis, a
bare git repo and ansible-runner) for an appliance that has no root on this
machine, so the pass takes the SSH path; nothing listens on 127.0.0.1:22, so
Ansible finds the host unreachable and the test reads the run's inventory.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from engine.db import appliances as appliance_db
from engine.db import tenants as tenant_db
from engine.db.migrate import apply_migrations
from engine.db.pool import create_pool
from engine.execution.ansible import AnsibleExecutor
from engine.reconcile.queue import ReconcileQueue
from engine.reconcile.reconciler import Member, Reconciler
from engine.repos.reader import SnapshotReader
from engine.repos.store import RepoStore, signature
from engine.settings import Settings
from tests.db.pg import Databases
from tests.reconcile.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parents[2]
TENANT = "brightsmile"
AUTHOR = signature("Test Operator", "operator@example.org")
VAULT_PASSWORD = "hearth-demo-vault-password"


@dataclass
class Pass:
    reconciler: Reconciler
    executor: AnsibleExecutor
    pool: object
    tenant_id: int


@pytest.fixture
async def one_tenant(tmp_path: Path, redis: Redis) -> AsyncIterator[Pass]:
    databases = Databases()
    dsn = databases.create()
    await apply_migrations(dsn)
    settings = Settings.model_validate({
        "DATABASE_URL": dsn, "REDIS_URL": REDIS_URL,
        "OLLAMA_API_URL": "http://127.0.0.1:9",
        "SECRET_KEY": "test-secret-key-0123456789abcdefghijkl",
        "JWT_SECRET": "test-jwt-secret-0123456789abcdefghijkl",
        "ANSIBLE_VAULT_PASSWORD": VAULT_PASSWORD, "REPOS_DIR": str(tmp_path / "repos"),
        "HEARTH_DATA_DIR": str(tmp_path / "data")})
    store = RepoStore(settings.repos_dir)
    store.create(TENANT, ROOT / "example-config-repo", author=AUTHOR)
    # The tenant aims front-office at another tenant's box.
    text = (ROOT / "example-config-repo/appliances/front-office.yaml").read_text()
    assert "hostname: front-office.brightsmile.example" in text
    store.commit_files(TENANT, {"appliances/front-office.yaml": text.replace(
        "hostname: front-office.brightsmile.example", "hostname: front-office.globex.example"
    ).encode()}, message="point at globex", author=AUTHOR, expected_head=store.head(TENANT))
    pool = await create_pool(dsn, min_size=1, max_size=4)
    executor = AnsibleExecutor(data_dir=settings.data_dir, timeout=120)
    async with pool.acquire() as conn:
        tenant = await tenant_db.insert_tenant(conn, name=TENANT, display_name="Bright Smile")
    reconciler = Reconciler(settings=settings, pool=pool, redis=redis,
                            queue=ReconcileQueue(redis), reader=SnapshotReader(),
                            executor=executor, worker_id="test-target")
    try:
        yield Pass(reconciler=reconciler, executor=executor, pool=pool, tenant_id=tenant["id"])
    finally:
        await pool.close()
        databases.drop_all()


async def _register(p: Pass, name: str, address: str | None) -> None:
    async with p.pool.acquire() as conn:  # type: ignore[attr-defined]
        await appliance_db.register_appliance(
            conn, tenant_id=p.tenant_id, name=name, hostname=f"{name}.brightsmile.example",
            address=address, secret_key="test-secret-key-0123456789abcdefghijkl")


async def _run_row(p: Pass, run_id: int) -> dict[str, object]:
    async with p.pool.acquire() as conn:  # type: ignore[attr-defined]
        row = await conn.fetchrow("SELECT status, error FROM reconcile_runs WHERE id = $1", run_id)
    assert row is not None
    return dict(row)


async def test_ansible_connects_to_the_registered_address_as_the_management_user(
        one_tenant: Pass) -> None:
    await _register(one_tenant, "front-office", "127.0.0.1")
    async with one_tenant.pool.acquire() as conn:  # type: ignore[attr-defined]
        globex = await tenant_db.insert_tenant(conn, name="globex", display_name="Globex")
        await appliance_db.register_appliance(
            conn, tenant_id=globex["id"], name="front-office",
            hostname="front-office.globex.example", address="127.0.0.2",
            secret_key="test-secret-key-0123456789abcdefghijkl")
    report = await one_tenant.reconciler.reconcile(TENANT,
                                                   [Member(name="front-office", claim=None)])
    assert len(report.run_ids) == 1
    inventory = one_tenant.executor.runs_dir / str(report.run_ids[0]) / "inventory/hosts.yml"
    hosts = json.loads(inventory.read_text())["all"]["hosts"]
    assert hosts == {"front-office": {
        "ansible_host": "127.0.0.1", "ansible_user": "hearth", "ansible_connection": "ssh",
        "ansible_become": True, "ansible_become_method": "sudo", "ansible_become_user": "root"}}
    assert "globex" not in inventory.read_text()
    row = await _run_row(one_tenant, report.run_ids[0])
    assert row["status"] == "failed"  # nothing listens on 127.0.0.1:22
    assert "front-office" in str(row["error"])


async def test_no_registered_address_means_no_connection_at_all(one_tenant: Pass) -> None:
    await _register(one_tenant, "front-office", None)
    report = await one_tenant.reconciler.reconcile(TENANT,
                                                   [Member(name="front-office", claim=None)])
    assert len(report.run_ids) == 1
    row = await _run_row(one_tenant, report.run_ids[0])
    assert row["status"] == "failed"
    assert "no registered address" in str(row["error"])
    # The run never started Ansible: no inventory naming any host was written.
    assert not (one_tenant.executor.runs_dir / str(report.run_ids[0]) / "inventory"
                / "hosts.yml").exists()
