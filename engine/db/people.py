"""SQL for people (human users) and their per-tenant memberships.

Passwords are kept as argon2id hashes only; ``verify_password`` runs a dummy
verification for unknown users so response time does not tell whether a
username exists.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from engine.errors import ConflictError, NotFoundError

ROLES = ("operator", "customer", "auditor")
_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("hearth-dummy-password")
_COLUMNS = "id, username, is_admin, disabled, created_at, updated_at"


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; constant work whether or not the user exists."""
    try:
        return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


async def insert_person(
    conn: asyncpg.Connection, *, username: str, password: str, is_admin: bool = False
) -> dict[str, Any]:
    try:
        row = await conn.fetchrow(
            f"""INSERT INTO people (username, password_hash, is_admin) VALUES ($1, $2, $3)
                RETURNING {_COLUMNS}""",  # noqa: S608
            username, hash_password(password), is_admin,
        )
    except asyncpg.UniqueViolationError:
        raise ConflictError(f"user {username!r} already exists") from None
    assert row is not None
    return dict(row)


async def get_person(conn: asyncpg.Connection, person_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM people WHERE id = $1", person_id)  # noqa: S608
    if row is None:
        raise NotFoundError(f"user {person_id} not found")
    return dict(row)


async def get_credentials(conn: asyncpg.Connection, username: str) -> dict[str, Any] | None:
    """id, password hash and flags of ``username``, or None."""
    row = await conn.fetchrow(
        "SELECT id, username, password_hash, is_admin, disabled, token_version FROM people "
        "WHERE username = $1",
        username,
    )
    return dict(row) if row else None


async def list_people(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(f"SELECT {_COLUMNS} FROM people ORDER BY username")]  # noqa: S608


async def update_person(
    conn: asyncpg.Connection, person_id: int, *, password: str | None = None,
    is_admin: bool | None = None, disabled: bool | None = None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""UPDATE people SET
                password_hash = COALESCE($2, password_hash),
                is_admin = COALESCE($3, is_admin),
                disabled = COALESCE($4, disabled),
                -- a new password or a disable ends every token issued before
                token_version = token_version
                    + CASE WHEN $2 IS NOT NULL OR $4 IS TRUE THEN 1 ELSE 0 END,
                updated_at = now()
             WHERE id = $1 RETURNING {_COLUMNS}""",  # noqa: S608
        person_id, hash_password(password) if password is not None else None, is_admin, disabled,
    )
    if row is None:
        raise NotFoundError(f"user {person_id} not found")
    return dict(row)


async def memberships_of(conn: asyncpg.Connection, person_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT m.tenant_id, t.name AS tenant, m.role
             FROM memberships m JOIN tenants t ON t.id = m.tenant_id
            WHERE m.person_id = $1 ORDER BY t.name""",
        person_id,
    )
    return [dict(r) for r in rows]


async def principal_row(conn: asyncpg.Connection, person_id: int, *, jti: str | None = None,
                        session_id: uuid.UUID | None = None) -> dict[str, Any] | None:
    """The person with their memberships in one round trip, for authentication; ``revoked``
    is true when the access token ``jti`` was logged out or its session ended."""
    row = await conn.fetchrow(
        """SELECT p.id, p.username, p.is_admin, p.disabled, p.token_version,
                  EXISTS (SELECT 1 FROM revoked_access_tokens r WHERE r.jti = $2)
                  OR ($3::uuid IS NOT NULL AND NOT EXISTS (
                        SELECT 1 FROM sessions s WHERE s.id = $3 AND s.person_id = p.id
                           AND s.revoked_at IS NULL)) AS revoked,
                  COALESCE(jsonb_object_agg(t.name, jsonb_build_array(t.id, m.role))
                           FILTER (WHERE t.id IS NOT NULL), '{}'::jsonb) AS roles
             FROM people p
             LEFT JOIN memberships m ON m.person_id = p.id
             LEFT JOIN tenants t ON t.id = m.tenant_id
            WHERE p.id = $1
            GROUP BY p.id""",
        person_id, jti, session_id,
    )
    return dict(row) if row else None


async def set_membership(
    conn: asyncpg.Connection, *, person_id: int, tenant_id: int, role: str
) -> dict[str, Any]:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    try:
        await conn.execute(
            """INSERT INTO memberships (person_id, tenant_id, role) VALUES ($1, $2, $3)
               ON CONFLICT (person_id, tenant_id) DO UPDATE SET role = excluded.role""",
            person_id, tenant_id, role,
        )
    except asyncpg.ForeignKeyViolationError:
        raise NotFoundError("user or tenant not found") from None
    return {"person_id": person_id, "tenant_id": tenant_id, "role": role}


async def delete_membership(conn: asyncpg.Connection, *, person_id: int, tenant_id: int) -> None:
    status = await conn.execute(
        "DELETE FROM memberships WHERE person_id = $1 AND tenant_id = $2", person_id, tenant_id)
    if status == "DELETE 0":
        raise NotFoundError("membership not found")
