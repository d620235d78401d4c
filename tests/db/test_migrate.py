"""Migrations apply to an empty database once; a second run (or a concurrent one) does nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from engine.db.migrate import MIGRATIONS_DIR, apply_migrations, discover
from engine.errors import ConflictError

_SCHEMA = """
SELECT table_name, column_name, data_type, is_nullable, column_default
  FROM information_schema.columns WHERE table_schema = 'public'
 ORDER BY table_name, ordinal_position
"""


async def _schema(dsn: str) -> list[tuple]:
    conn = await asyncpg.connect(dsn)
    try:
        return [tuple(r) for r in await conn.fetch(_SCHEMA)]
    finally:
        await conn.close()


async def test_applies_to_empty_database_then_changes_nothing(empty_database_factory) -> None:
    dsn = empty_database_factory()
    names = [m.name for m in discover()]
    assert names and names[0] == "0001_initial.sql"

    assert await apply_migrations(dsn) == names
    first = await _schema(dsn)
    tables = {row[0] for row in first}
    for table in ("tenants", "people", "memberships", "appliances", "appliance_tokens",
                  "observed_latest", "observed_history", "appliance_status", "reconcile_runs",
                  "run_events", "pull_requests", "support_requests", "tasks", "audit_events",
                  "schema_migrations"):
        assert table in tables

    assert await apply_migrations(dsn) == []
    assert await _schema(dsn) == first


async def test_concurrent_runs_apply_each_migration_once(empty_database_factory) -> None:
    dsn = empty_database_factory()
    results = await asyncio.gather(*(apply_migrations(dsn) for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, len(discover())]


async def test_edited_migration_is_refused(empty_database_factory, tmp_path: Path) -> None:
    dsn = empty_database_factory()
    for source in MIGRATIONS_DIR.glob("*.sql"):
        (tmp_path / source.name).write_text(source.read_text())
    await apply_migrations(dsn, directory=tmp_path)
    first = tmp_path / discover()[0].name
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(ConflictError, match="changed after it was applied"):
        await apply_migrations(dsn, directory=tmp_path)


async def test_failed_migration_leaves_nothing_behind(empty_database_factory, tmp_path) -> None:
    dsn = empty_database_factory()
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE a (x int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE b (x int); SELECT no_such_function();")
    with pytest.raises(asyncpg.PostgresError):
        await apply_migrations(dsn, directory=tmp_path)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass('b')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 1
    finally:
        await conn.close()
