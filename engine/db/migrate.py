"""Ordered SQL migrations, applied once each under a PostgreSQL advisory lock.

Files are ``migrations/NNNN_name.sql``; each runs in its own transaction and
is recorded in ``schema_migrations`` with a checksum. Several processes may
start at once (API workers, the worker, ``hearth db migrate``): the advisory
lock makes all but one wait, and they then find nothing left to do. A
migration whose file changed after it was applied is an error, not a
silent skip.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from engine.errors import ConflictError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_LOCK_KEY = 0x4845_4152_5448  # "HEARTH"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Migrations in ``directory``, ordered by number; duplicate numbers are an error."""
    found = sorted(p for p in directory.iterdir() if _NAME.fullmatch(p.name))
    numbers = [_NAME.fullmatch(p.name).group(1) for p in found]  # type: ignore[union-attr]
    if len(set(numbers)) != len(numbers):
        raise ConflictError(f"two migrations share a number in {directory}")
    return [Migration(p.name, p.read_text(encoding="utf-8")) for p in found]


async def _apply(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               name text PRIMARY KEY,
               checksum text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    done = {r["name"]: r["checksum"] for r in await conn.fetch(
        "SELECT name, checksum FROM schema_migrations")}
    applied = []
    for migration in migrations:
        if migration.name in done:
            if done[migration.name] != migration.checksum:
                raise ConflictError(f"migration {migration.name} changed after it was applied")
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                migration.name, migration.checksum,
            )
        applied.append(migration.name)
    return applied


async def apply_migrations(
    pool_or_dsn: asyncpg.Pool | str, *, directory: Path = MIGRATIONS_DIR
) -> list[str]:
    """Apply pending migrations; return the names applied (empty when up to date)."""
    migrations = discover(directory)
    if isinstance(pool_or_dsn, str):
        conn = await asyncpg.connect(pool_or_dsn)
        try:
            return await _locked(conn, migrations)
        finally:
            await conn.close()
    async with pool_or_dsn.acquire() as conn:
        return await _locked(conn, migrations)


async def _locked(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        return await _apply(conn, migrations)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
