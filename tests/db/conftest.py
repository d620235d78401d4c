"""Fixtures for storage tests: a fresh, randomly named PostgreSQL database per session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest

from engine.db.migrate import apply_migrations
from engine.db.pool import create_pool
from tests.db.pg import Databases, run_sync


@pytest.fixture(scope="session")
def empty_database_factory() -> Iterator[Callable[[], str]]:
    """Call it to get the DSN of a new empty database; all are dropped at the end."""
    databases = Databases()
    yield databases.create
    databases.drop_all()


@pytest.fixture(scope="session")
def database_url(empty_database_factory: Callable[[], str]) -> str:
    dsn = empty_database_factory()
    run_sync(apply_migrations(dsn))
    return dsn


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await conn.execute("TRUNCATE tenants, people, audit_events RESTART IDENTITY CASCADE")
    yield pool
    await pool.close()
