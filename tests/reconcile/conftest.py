"""A real Redis (the reconcile tests' own database), flushed before and after each test; a
tenant on real PostgreSQL."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from api.auth import issue_person_token
from engine.db import appliances as appliance_db
from engine.db import heartbeats as heartbeat_db
from engine.db import tenants as tenant_db
from engine.db.heartbeats import HeartbeatRow
from engine.db.migrate import apply_migrations
from engine.db.pool import create_pool
from engine.repos.store import RepoStore, signature
from engine.settings import Settings
from schemas.heartbeat import ObservedState
from tests.db.pg import Databases, run_sync
from tests.services import RECONCILE_DB, redis_url

REDIS_URL = redis_url(RECONCILE_DB)


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


# --------------------------------------------------------------------------- #
# A tenant on real PostgreSQL and a real bare repo, no appliance roots
# --------------------------------------------------------------------------- #

ROOT = Path(__file__).resolve().parents[2]
TENANT, APPLIANCE = "acme", "front-office"


@dataclass
class Tenant:
    """The example config repo as tenant ``acme`` with auto-sync and self-heal off (so a
    pass plans and records status but never starts Ansible), ``front-office`` registered."""

    settings: Settings
    pool: asyncpg.Pool
    head: str
    appliance_id: uuid.UUID
    admin_jwt: str

    async def store_heartbeat(self, observed: ObservedState, *, received_at: datetime,
                              sequence: int = 1) -> None:
        async with self.pool.acquire() as conn:
            await heartbeat_db.write_batch(conn, [HeartbeatRow(
                appliance_id=self.appliance_id, sequence=sequence, sent_at=received_at,
                received_at=received_at, agent_version="test", applied_revision=None,
                observed=observed.model_dump_json(), services="[]", facts="{}")])


@pytest.fixture(scope="session")
def reconcile_database_url() -> Iterator[str]:
    databases = Databases()
    dsn = databases.create()
    run_sync(apply_migrations(dsn))
    yield dsn
    databases.drop_all()


@pytest.fixture
async def tenant(reconcile_database_url: str, tmp_path: Path) -> AsyncIterator[Tenant]:
    source = tmp_path / "source"
    shutil.copytree(ROOT / "example-config-repo", source)
    tenant_yaml = source / "tenant.yaml"
    text = tenant_yaml.read_text()
    assert "auto_sync: true" in text and "self_heal: true" in text
    tenant_yaml.write_text(text.replace("auto_sync: true", "auto_sync: false")
                           .replace("self_heal: true", "self_heal: false"))
    settings = Settings.model_validate({
        "DATABASE_URL": reconcile_database_url, "REDIS_URL": REDIS_URL,
        "OLLAMA_API_URL": "http://127.0.0.1:9",
        "SECRET_KEY": "test-secret-key-0123456789abcdefghijkl",
        "JWT_SECRET": "test-jwt-secret-0123456789abcdefghijkl",
        "ANSIBLE_VAULT_PASSWORD": "vault-0123456789", "REPOS_DIR": str(tmp_path / "repos"),
        "HEARTH_DATA_DIR": str(tmp_path / "data")})
    head = RepoStore(settings.repos_dir).create(
        TENANT, source, author=signature("Test Lead", "lead@example.org"))
    pool = await create_pool(reconcile_database_url, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn:
            await conn.execute("TRUNCATE tenants, people, audit_events RESTART IDENTITY CASCADE")
            row = await tenant_db.insert_tenant(conn, name=TENANT, display_name="Acme")
            appliance, _ = await appliance_db.register_appliance(
                conn, tenant_id=row["id"], name=APPLIANCE, hostname="front-office.acme.example",
                secret_key=settings.secret_key)
            admin = await conn.fetchval(
                "INSERT INTO people (username, password_hash, is_admin) VALUES ($1, $2, true) "
                "RETURNING id", "admin", "not-a-hash")
        yield Tenant(settings=settings, pool=pool, head=head, appliance_id=appliance["id"],
                     admin_jwt=issue_person_token(secret=settings.jwt_secret, person_id=admin,
                                                  lifetime=600))
    finally:
        await pool.close()
