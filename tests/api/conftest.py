"""Fixtures for API tests: real PostgreSQL (a fresh database), Redis DB 9, real bare repos.

``world`` seeds two tenants (acme, globex) with their repos from the example
config repo, people in every role, and appliances with live tokens; it
flushes Redis DB 9 and truncates the tables first, so each test starts equal.
``client`` is an ``AsyncTestClient`` running the app's lifespan.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
import pytest
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from api.app import create_app
from api.auth import issue_person_token
from api.context import Limits
from engine.db import appliances, tenants
from engine.db.migrate import apply_migrations
from engine.db.people import hash_password
from engine.db.pool import create_pool
from engine.repos.store import RepoStore, signature
from engine.settings import Settings
from tests.api.pullseed import seed_pulls
from tests.db.pg import Databases, run_sync
from tests.services import API_DB, redis_url

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = redis_url(API_DB)
PASSWORD = "correct-horse-battery-staple"
_PASSWORD_HASH = hash_password(PASSWORD)
APPLIANCE = "front-office"
"""An appliance defined in example-config-repo; both tenants register it."""


@dataclass
class World:
    settings: Settings
    tenant_ids: dict[str, int] = field(default_factory=dict)
    person_ids: dict[str, int] = field(default_factory=dict)
    jwts: dict[str, str] = field(default_factory=dict)
    appliance_ids: dict[str, str] = field(default_factory=dict)
    """'acme/front-office' -> id"""
    appliance_tokens: dict[str, str] = field(default_factory=dict)
    heads: dict[str, str] = field(default_factory=dict)
    run_ids: dict[str, int] = field(default_factory=dict)
    """tenant -> a finished reconcile run of its front-office"""
    support_ids: dict[str, int] = field(default_factory=dict)
    """tenant -> a support request (acme's by the customer, globex's by its operator)"""

    def auth(self, who: str) -> dict[str, str]:
        """Headers for a role: admin, operator, customer, auditor, other-operator, appliance,
        other-appliance, anonymous."""
        if who == "anonymous":
            return {}
        if who == "appliance":
            return {"Authorization": f"Bearer {self.appliance_tokens['acme/' + APPLIANCE]}"}
        if who == "other-appliance":
            return {"Authorization": f"Bearer {self.appliance_tokens['globex/' + APPLIANCE]}"}
        return {"Authorization": f"Bearer {self.jwts[who]}"}


PEOPLE = {  # name -> (is_admin, tenant, role)
    "admin": (True, None, None),
    "operator": (False, "acme", "operator"),
    "customer": (False, "acme", "customer"),
    "auditor": (False, "acme", "auditor"),
    "other-operator": (False, "globex", "operator"),
}


@pytest.fixture(scope="session")
def api_database_url() -> Iterator[str]:
    databases = Databases()
    dsn = databases.create()
    run_sync(apply_migrations(dsn))
    yield dsn
    databases.drop_all()


@pytest.fixture(scope="session")
def repos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    repos_dir = tmp_path_factory.mktemp("repos")
    store = RepoStore(repos_dir)
    author = signature("Test Lead", "lead@example.org")
    heads = {t: store.create(t, ROOT / "example-config-repo", author=author)
             for t in ("acme", "globex")}
    return repos_dir, heads


@pytest.fixture(scope="session")
def settings(api_database_url: str, repos: tuple[Path, dict[str, str]],
             tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings.model_validate({
        "DATABASE_URL": api_database_url, "REDIS_URL": REDIS_URL,
        "OLLAMA_API_URL": "http://127.0.0.1:9", "SECRET_KEY": "test-secret-key-0123456789abcdefghijkl",
        "JWT_SECRET": "test-jwt-secret-0123456789abcdefghijkl", "ANSIBLE_VAULT_PASSWORD": "vault-0123456789",
        "REPOS_DIR": str(repos[0]), "HEARTH_DATA_DIR": str(tmp_path_factory.mktemp("data")),
    })


def reset_repos(settings: Settings, heads: dict[str, str]) -> None:
    """Every tenant repo back to its first commit on main and no other branch (tests push,
    merge and open pull requests)."""
    store = RepoStore(settings.repos_dir)
    for tenant, head in heads.items():
        repo = store.open(tenant)
        for name in list(repo.references):
            if name.startswith("refs/heads/") and name != "refs/heads/main":
                repo.references.delete(name)
        repo.references["refs/heads/main"].set_target(pygit2.Oid(hex=head))


async def seed(settings: Settings, heads: dict[str, str]) -> World:
    world = World(settings=settings, heads=heads)
    reset_repos(settings, heads)
    redis = Redis.from_url(settings.redis_url)
    await redis.flushdb()
    await redis.aclose()
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await conn.execute("TRUNCATE tenants, people, audit_events RESTART IDENTITY CASCADE")
            for name in ("acme", "globex"):
                row = await tenants.insert_tenant(conn, name=name, display_name=name.title())
                world.tenant_ids[name] = row["id"]
            for name, (is_admin, tenant, role) in PEOPLE.items():
                pid = await conn.fetchval(
                    """INSERT INTO people (username, password_hash, is_admin)
                       VALUES ($1, $2, $3) RETURNING id""", name, _PASSWORD_HASH, is_admin)
                world.person_ids[name] = pid
                if tenant:
                    await conn.execute(
                        "INSERT INTO memberships (person_id, tenant_id, role) VALUES ($1, $2, $3)",
                        pid, world.tenant_ids[tenant], role)
                world.jwts[name] = issue_person_token(
                    secret=settings.jwt_secret, person_id=pid, lifetime=600)
            for tenant in ("acme", "globex"):
                for name in (APPLIANCE, "lab"):
                    row, token = await appliances.register_appliance(
                        conn, tenant_id=world.tenant_ids[tenant], name=name,
                        hostname=f"{name}.{tenant}.example", secret_key=settings.secret_key)
                    world.appliance_ids[f"{tenant}/{name}"] = str(row["id"])
                    world.appliance_tokens[f"{tenant}/{name}"] = token
                world.run_ids[tenant] = await conn.fetchval(
                    """INSERT INTO reconcile_runs (tenant_id, appliances, revision, status,
                                                   started_at, finished_at)
                       VALUES ($1, $2, $3, 'succeeded', now(), now()) RETURNING id""",
                    world.tenant_ids[tenant],
                    [uuid.UUID(world.appliance_ids[f"{tenant}/{APPLIANCE}"])], heads[tenant])
            for tenant, person in (("acme", "customer"), ("globex", "other-operator")):
                world.support_ids[tenant] = await conn.fetchval(
                    """INSERT INTO support_requests (tenant_id, requested_by, text, status)
                       VALUES ($1, $2, 'Where are my files?', 'queued') RETURNING id""",
                    world.tenant_ids[tenant], world.person_ids[person])
            await seed_pulls(conn, settings, tenant_id=world.tenant_ids["acme"],
                             main=heads["acme"], author_id=world.person_ids["operator"],
                             approver_id=world.person_ids["admin"])
    finally:
        await pool.close()
    return world


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
async def world(settings: Settings, repos: tuple[Path, dict[str, str]]) -> World:
    return await seed(settings, repos[1])


@pytest.fixture
async def client(settings: Settings, world: World, limits: Limits
                 ) -> AsyncIterator[AsyncTestClient]:
    app = create_app(settings, limits=limits, migrate=False, pool_size=4)
    async with AsyncTestClient(app=app) as client:
        yield client
