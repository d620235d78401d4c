"""SQL for personal access tokens: how people authenticate to git over HTTP.

A token is ``hth_pat_`` followed by 32 random bytes in URL-safe base64. It is
shown once, when it is made; the database keeps only HMAC-SHA256(SECRET_KEY,
token), exactly as for appliance tokens (``engine.db.appliances``). A token
has a scope, ``read`` (clone and fetch) or ``write`` (also push), an optional
expiry, and is revocable; every use looks the hash up, so a revoked or expired
token stops at once. The token never widens its owner's roles: what a person
may do in a tenant is still their membership's role.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, Literal

import asyncpg

from engine.db.appliances import hash_token
from engine.errors import NotFoundError

TOKEN_PREFIX = "hth_pat_"  # noqa: S105 (a prefix, not a secret)
Scope = Literal["read", "write"]
_COLUMNS = "id, person_id, name, scope, hint, created_at, expires_at, revoked_at, last_used_at"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def looks_like_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX) and 40 <= len(value) <= 64


async def create_token(conn: asyncpg.Connection, *, person_id: int, name: str, scope: Scope,
                       expires_at: datetime | None, secret_key: str) -> tuple[dict[str, Any], str]:
    """Store a new token's hash; returns (row, token). The token is not recoverable later."""
    token = new_token()
    row = await conn.fetchrow(
        f"""INSERT INTO personal_tokens (person_id, name, scope, token_hash, hint, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_COLUMNS}""",  # noqa: S608
        person_id, name, scope, hash_token(secret_key, token), token[-4:], expires_at)
    assert row is not None
    return dict(row), token


async def list_tokens(conn: asyncpg.Connection, *, person_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM personal_tokens WHERE person_id = $1 ORDER BY id",  # noqa: S608
        person_id)
    return [dict(r) for r in rows]


async def revoke_token(conn: asyncpg.Connection, *, person_id: int, token_id: int
                       ) -> dict[str, Any]:
    """Revoke one of the person's tokens (idempotent); ``NotFoundError`` for anyone else's."""
    row = await conn.fetchrow(
        f"""UPDATE personal_tokens SET revoked_at = COALESCE(revoked_at, now())
             WHERE id = $1 AND person_id = $2 RETURNING {_COLUMNS}""",  # noqa: S608
        token_id, person_id)
    if row is None:
        raise NotFoundError(f"token {token_id} not found")
    return dict(row)


async def resolve(conn: asyncpg.Connection, *, token: str, secret_key: str
                  ) -> dict[str, Any] | None:
    """The live token's owner with memberships, or None (unknown, revoked, expired, or the
    owner is disabled). Records the use."""
    if not looks_like_token(token):
        return None
    row = await conn.fetchrow(
        """UPDATE personal_tokens k SET last_used_at = now()
             FROM people p
            WHERE k.token_hash = $1 AND k.revoked_at IS NULL
              AND (k.expires_at IS NULL OR k.expires_at > now())
              AND p.id = k.person_id AND NOT p.disabled
        RETURNING k.id AS token_id, k.scope, p.id AS person_id, p.username, p.is_admin""",
        hash_token(secret_key, token))
    if row is None:
        return None
    roles = await conn.fetch(
        """SELECT t.name, t.id, m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id
            WHERE m.person_id = $1""", row["person_id"])
    return {**dict(row), "roles": {r["name"]: (r["id"], r["role"]) for r in roles}}
