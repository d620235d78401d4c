"""SQL for people (human users) and their per-tenant memberships.

Passwords are kept as argon2id hashes only; ``verify_password`` runs a dummy
verification for unknown users so response time does not tell whether a
username exists.
"""

from __future__ import annotations

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
        "SELECT id, username, password_hash, is_admin, disabled FROM people WHERE username = $1",
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


async def principal_row(conn: asyncpg.Connection, person_id: int) -> dict[str, Any] | None:
    """The person with their memberships in one round trip, for authentication."""
    row = await conn.fetchrow(
        """SELECT p.id, p.username, p.is_admin, p.disabled,
                  COALESCE(jsonb_object_agg(t.name, jsonb_build_array(t.id, m.role))
                           FILTER (WHERE t.id IS NOT NULL), '{}'::jsonb) AS roles
             FROM people p
             LEFT JOIN memberships m ON m.person_id = p.id
             LEFT JOIN tenants t ON t.id = m.tenant_id
            WHERE p.id = $1
            GROUP BY p.id""",
        person_id,
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
