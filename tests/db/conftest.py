"""Fixtures for storage tests: a fresh, randomly named PostgreSQL database per session.

The database is created from the server at ``HEARTH_TEST_PG`` (default the
local trust-auth server), migrated once, and dropped at the end. Tests that
write truncate what they touch through ``clean_db``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg
import pytest

from engine.db.migrate import apply_migrations
from engine.db.pool import create_pool

T = TypeVar("T")
SERVER = os.environ.get("HEARTH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _dsn(name: str) -> str:
    return SERVER.rsplit("/", 1)[0] + "/" + name


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync or async code alike (in its own thread)."""
    with ThreadPoolExecutor(1) as executor:
        return executor.submit(asyncio.run, coro).result()


def _admin(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(SERVER)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_sync(run())


@pytest.fixture(scope="session")
def empty_database_factory() -> Iterator[object]:
    """Call it to get the DSN of a new empty database; all are dropped at the end."""
    made: list[str] = []

    def make() -> str:
        name = "hearth_t_" + secrets.token_hex(6)
        _admin(f'CREATE DATABASE "{name}"')
        made.append(name)
        return _dsn(name)

    yield make
    for name in made:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def database_url(empty_database_factory: object) -> str:
    dsn = empty_database_factory()  # type: ignore[operator]
    run_sync(apply_migrations(dsn))
    return dsn


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await conn.execute(
            "TRUNCATE tenants, people, audit_events RESTART IDENTITY CASCADE")
    yield pool
    await pool.close()
