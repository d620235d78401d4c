"""SQL for per-tenant vault passwords: ciphertext rows only (``engine.tenant_vault``
encrypts and decrypts them; this module never sees a password)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg


async def add_password(conn: asyncpg.Connection, *, tenant_id: int, ciphertext: bytes,
                       version: int) -> None:
    await conn.execute(
        """INSERT INTO tenant_vault_passwords (tenant_id, version, ciphertext)
           VALUES ($1, $2, $3)""", tenant_id, version, ciphertext)


async def next_version(conn: asyncpg.Connection, tenant_id: int) -> int:
    return await conn.fetchval(
        "SELECT COALESCE(max(version), 0) + 1 FROM tenant_vault_passwords WHERE tenant_id = $1",
        tenant_id)


async def retire_current(conn: asyncpg.Connection, *, tenant_id: int,
                         transition: timedelta) -> None:
    """Every password of the tenant is accepted until ``now() + transition`` at the latest
    (an earlier transition that ends sooner keeps its end)."""
    await conn.execute(
        """UPDATE tenant_vault_passwords
              SET accept_until = LEAST(COALESCE(accept_until, 'infinity'), now() + $2)
            WHERE tenant_id = $1""", tenant_id, transition)


async def accepted(conn: asyncpg.Connection, *, tenant: str) -> list[dict[str, Any]]:
    """tenant_id, version, ciphertext of the passwords ``tenant`` accepts now, newest first."""
    rows = await conn.fetch(
        """SELECT v.tenant_id, v.version, v.ciphertext
             FROM tenant_vault_passwords v JOIN tenants t ON t.id = v.tenant_id
            WHERE t.name = $1 AND (v.accept_until IS NULL OR v.accept_until > now())
            ORDER BY v.version DESC""", tenant)
    return [dict(r) for r in rows]
