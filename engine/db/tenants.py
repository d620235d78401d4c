"""SQL for tenants: the row that names a tenant and caches its validation state.

The tenant's desired state lives in its git repository; this row only gives
it an id for foreign keys and remembers the last revision that validated
(``last_good_revision``) and why the newest one did not.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from engine.errors import ConflictError, NotFoundError
from schemas.names import OBJECT_NAME

_COLUMNS = """id, name, display_name, created_at, last_good_revision, validated_revision,
              validation_status, validation_errors, validated_at"""


async def insert_tenant(
    conn: asyncpg.Connection, *, name: str, display_name: str
) -> dict[str, Any]:
    """Create a tenant; ``ConflictError`` when the name is taken."""
    try:
        row = await conn.fetchrow(
            f"INSERT INTO tenants (name, display_name) VALUES ($1, $2) RETURNING {_COLUMNS}",  # noqa: S608
            name, display_name,
        )
    except asyncpg.UniqueViolationError:
        raise ConflictError(f"tenant {name!r} already exists") from None
    assert row is not None
    return dict(row)


async def get_tenant_by_name(conn: asyncpg.Connection, name: str) -> dict[str, Any] | None:
    """The tenant called ``name``, or None (also for a name no tenant can have, which
    never reaches the database)."""
    if not OBJECT_NAME.fullmatch(name):
        return None
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM tenants WHERE name = $1", name)  # noqa: S608
    return dict(row) if row else None


async def require_tenant(conn: asyncpg.Connection, name: str) -> dict[str, Any]:
    """The tenant called ``name``; ``NotFoundError`` when there is none."""
    row = await get_tenant_by_name(conn, name)
    if row is None:
        raise NotFoundError(f"tenant {name!r} not found")
    return row


async def list_tenants(
    conn: asyncpg.Connection, *, only_ids: list[int] | None = None
) -> list[dict[str, Any]]:
    """All tenants by name, or only those whose id is in ``only_ids``."""
    if only_ids is None:
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM tenants ORDER BY name")  # noqa: S608
    else:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM tenants WHERE id = ANY($1::bigint[]) ORDER BY name", only_ids)  # noqa: S608
    return [dict(r) for r in rows]


async def record_validation(
    conn: asyncpg.Connection, *, tenant_id: int, revision: str, errors: list[dict[str, Any]]
) -> None:
    """Remember the outcome of validating ``revision``; a clean one becomes the last good."""
    await conn.execute(
        """UPDATE tenants SET validated_revision = $2,
                  validation_status = CASE WHEN $3::jsonb = '[]'::jsonb THEN 'valid'
                                           ELSE 'invalid' END,
                  validation_errors = $3::jsonb,
                  last_good_revision = CASE WHEN $3::jsonb = '[]'::jsonb THEN $2
                                            ELSE last_good_revision END,
                  validated_at = now()
            WHERE id = $1""",
        tenant_id, revision, errors,
    )
