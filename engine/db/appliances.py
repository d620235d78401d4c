"""SQL for appliances and their tokens.

An appliance token is ``hth_app_`` followed by 32 random bytes in URL-safe
base64. The database keeps only HMAC-SHA256(SECRET_KEY, token): a stolen
table is useless without the key, and lookup is one indexed equality.
Rotation revokes every live token of the appliance in the same transaction
that issues the new one, so exactly one token is live afterwards; a revoked
token stops at once because every request looks the hash up.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from typing import Any

import asyncpg

from engine.db.batch import MicroBatcher
from engine.errors import ConflictError, NotFoundError

TOKEN_PREFIX = "hth_app_"  # noqa: S105 (a prefix, not a secret)
_COLUMNS = "a.id, a.tenant_id, t.name AS tenant, a.name, a.hostname, a.address, a.created_at"


def new_token() -> str:
    """A fresh appliance token (shown once, never stored)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(secret_key: str, token: str) -> bytes:
    return hmac.new(secret_key.encode(), token.encode(), hashlib.sha256).digest()


def looks_like_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX) and 40 <= len(value) <= 64


async def _issue(conn: asyncpg.Connection, appliance_id: uuid.UUID, secret_key: str) -> str:
    token = new_token()
    await conn.execute(
        "INSERT INTO appliance_tokens (appliance_id, token_hash, hint) VALUES ($1, $2, $3)",
        appliance_id, hash_token(secret_key, token), token[-4:],
    )
    return token


async def register_appliance(
    conn: asyncpg.Connection, *, tenant_id: int, name: str, hostname: str | None,
    secret_key: str, address: str | None = None,
) -> tuple[dict[str, Any], str]:
    """Create an appliance and its first token; returns (appliance, token).

    ``address`` is where Ansible reaches the box (``schemas.address``); it is
    unique across the fleet, so no tenant can register another tenant's box.
    """
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                """INSERT INTO appliances (tenant_id, name, hostname, address)
                   VALUES ($1, $2, $3, $4) RETURNING id""",
                tenant_id, name, hostname, address,
            )
        except asyncpg.UniqueViolationError as exc:
            raise _conflict(exc, name=name, address=address) from None
        assert row is not None
        token = await _issue(conn, row["id"], secret_key)
        return await get_appliance(conn, row["id"]), token


def _conflict(exc: asyncpg.UniqueViolationError, *, name: str,
              address: str | None) -> ConflictError:
    if exc.constraint_name == "appliances_address_unique":
        return ConflictError(f"address {address!r} is already registered for an appliance")
    return ConflictError(f"appliance {name!r} already exists")


async def set_address(conn: asyncpg.Connection, *, appliance_id: uuid.UUID,
                      address: str | None) -> dict[str, Any]:
    """Record (or clear, with None) the management address of an appliance."""
    try:
        status = await conn.execute("UPDATE appliances SET address = $2 WHERE id = $1",
                                    appliance_id, address)
    except asyncpg.UniqueViolationError as exc:
        raise _conflict(exc, name="", address=address) from None
    if status.endswith(" 0"):
        raise NotFoundError("no such appliance")
    return await get_appliance(conn, appliance_id)


async def rotate_token(
    conn: asyncpg.Connection, *, appliance_id: uuid.UUID, secret_key: str
) -> str:
    """Revoke every live token of the appliance and issue a new one."""
    async with conn.transaction():
        await revoke_tokens(conn, appliance_id=appliance_id)
        return await _issue(conn, appliance_id, secret_key)


async def revoke_tokens(conn: asyncpg.Connection, *, appliance_id: uuid.UUID) -> int:
    """Revoke every live token of the appliance; returns how many were live."""
    status = await conn.execute(
        """UPDATE appliance_tokens SET revoked_at = now()
            WHERE appliance_id = $1 AND revoked_at IS NULL""",
        appliance_id,
    )
    return int(status.split()[-1])


async def resolve_tokens(
    conn: asyncpg.Connection, hashes: list[bytes]
) -> dict[bytes, dict[str, Any]]:
    """Live tokens among ``hashes``: hash -> {appliance_id, tenant_id, tenant, name}."""
    rows = await conn.fetch(
        """SELECT k.token_hash, a.id AS appliance_id, a.tenant_id, t.name AS tenant, a.name
             FROM appliance_tokens k
             JOIN appliances a ON a.id = k.appliance_id
             JOIN tenants t ON t.id = a.tenant_id
            WHERE k.token_hash = ANY($1::bytea[]) AND k.revoked_at IS NULL""",
        hashes,
    )
    return {bytes(r["token_hash"]): dict(r) for r in rows}


async def get_appliance(conn: asyncpg.Connection, appliance_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM appliances a JOIN tenants t ON t.id = a.tenant_id
             WHERE a.id = $1""",  # noqa: S608
        appliance_id,
    )
    if row is None:
        raise NotFoundError(f"appliance {appliance_id} not found")
    return dict(row)


async def get_appliance_by_name(
    conn: asyncpg.Connection, *, tenant_id: int, name: str
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS} FROM appliances a JOIN tenants t ON t.id = a.tenant_id
             WHERE a.tenant_id = $1 AND a.name = $2""",  # noqa: S608
        tenant_id, name,
    )
    if row is None:
        raise NotFoundError(f"appliance {name!r} not found")
    return dict(row)


_VIEW = """
SELECT a.id, a.tenant_id, t.name AS tenant, a.name, a.hostname, a.address, a.created_at,
       o.sequence, o.sent_at, o.received_at, o.applied_revision AS reported_revision,
       o.services, o.agent_version, o.observed,
       s.sync, s.health, s.conditions, s.desired_revision, s.applied_revision,
       s.updated_at AS status_updated_at
  FROM appliances a
  JOIN tenants t ON t.id = a.tenant_id
  LEFT JOIN observed_latest o ON o.appliance_id = a.id
  LEFT JOIN appliance_status s ON s.appliance_id = a.id
"""


async def status_rows(conn: asyncpg.Connection, *, tenant_id: int) -> list[dict[str, Any]]:
    """Appliances of a tenant with their latest heartbeat and stored status (if any)."""
    rows = await conn.fetch(_VIEW + " WHERE a.tenant_id = $1 ORDER BY a.name", tenant_id)
    return [dict(r) for r in rows]


async def status_row(conn: asyncpg.Connection, appliance_id: uuid.UUID) -> dict[str, Any]:
    row = await conn.fetchrow(_VIEW + " WHERE a.id = $1", appliance_id)
    if row is None:
        raise NotFoundError(f"appliance {appliance_id} not found")
    return dict(row)


class TokenResolver:
    """Looks appliance tokens up in batches: one query for all concurrent requests.

    No cache: each call reads the table, so a revoked token fails on the next
    request after the revocation commits.
    """

    def __init__(self, pool: asyncpg.Pool, *, secret_key: str, linger: float = 0.0,
                 max_in_flight: int = 2) -> None:
        self._pool = pool
        self._secret_key = secret_key
        self._batcher: MicroBatcher[bytes, dict[str, Any] | None] = MicroBatcher(
            self._flush, linger=linger, max_in_flight=max_in_flight)

    async def _flush(self, hashes: list[bytes]) -> list[dict[str, Any] | None]:
        async with self._pool.acquire() as conn:
            found = await resolve_tokens(conn, list(set(hashes)))
        return [found.get(h) for h in hashes]

    async def resolve(self, token: str) -> dict[str, Any] | None:
        """The appliance a live ``token`` belongs to, or None."""
        if not looks_like_token(token):
            return None
        return await self._batcher.submit(hash_token(self._secret_key, token))

    async def close(self) -> None:
        await self._batcher.close()
