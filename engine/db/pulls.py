"""SQL for pull requests and their reviews.

Numbers are per tenant and allocated under a transaction-scoped advisory lock
on the tenant, so concurrent opens get consecutive numbers. State changes are
conditional updates (``WHERE status = 'open'``), so two merges or a merge and
a close of the same pull request cannot both win; the merge itself also holds
``merge_lock`` (a session advisory lock per pull request) around the git work.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from engine.errors import ConflictError, NotFoundError

_COLUMNS = """p.id, p.tenant_id, p.number, p.title, p.description, p.branch, p.target,
              p.base_revision, p.head_revision, p.status, p.checks, p.author_kind, p.author_id,
              p.support_request_id, p.merged_revision, p.labels, p.reverts, p.created_at,
              p.updated_at, p.merged_at, p.closed_at, p.merged_by,
              COALESCE(a.username, p.author_id) AS author"""
_FROM = "pull_requests p LEFT JOIN people a ON a.id::text = p.author_id"
_PULL_LOCK = 0x50554C4C  # "PULL"


async def insert_pull(conn: asyncpg.Connection, *, tenant_id: int, title: str, body: str,
                      branch: str, target: str, base: str, head: str, author_kind: str,
                      author_id: str, labels: list[str], support_request_id: int | None = None,
                      reverts: int | None = None) -> dict[str, Any]:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, $2::int)", _PULL_LOCK, tenant_id)
        pull_id = await conn.fetchval(
            """INSERT INTO pull_requests (tenant_id, number, title, description, branch, target,
                                          base_revision, head_revision, author_kind, author_id,
                                          labels, support_request_id, reverts)
               VALUES ($1, (SELECT COALESCE(max(number), 0) + 1 FROM pull_requests
                             WHERE tenant_id = $1),
                       $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id""",
            tenant_id, title, body, branch, target, base, head, author_kind, author_id, labels,
            support_request_id, reverts)
    return await get_by_id(conn, pull_id)


async def get_by_id(conn: asyncpg.Connection, pull_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM {_FROM} WHERE p.id = $1", pull_id)  # noqa: S608
    if row is None:
        raise NotFoundError("pull request not found")
    return dict(row)


async def get_pull(conn: asyncpg.Connection, *, tenant_id: int, number: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM {_FROM} WHERE p.tenant_id = $1 AND p.number = $2",  # noqa: S608
        tenant_id, number)
    if row is None:
        raise NotFoundError(f"pull request #{number} not found")
    return dict(row)


async def list_pulls(conn: asyncpg.Connection, *, tenant_id: int, state: str | None,
                     limit: int = 100) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM {_FROM}
             WHERE p.tenant_id = $1 AND ($2::text IS NULL OR p.status = $2)
             ORDER BY p.number DESC LIMIT $3""",  # noqa: S608
        tenant_id, state, limit)
    return [dict(r) for r in rows]


async def open_on_branch(conn: asyncpg.Connection, *, tenant_id: int, branch: str
                         ) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM {_FROM}
             WHERE p.tenant_id = $1 AND p.branch = $2 AND p.status = 'open'""",  # noqa: S608
        tenant_id, branch)
    return [dict(r) for r in rows]


async def set_head(conn: asyncpg.Connection, pull_id: int, head: str) -> None:
    await conn.execute(
        """UPDATE pull_requests SET head_revision = $2, updated_at = now(),
                  checks = '{}'::jsonb
            WHERE id = $1 AND status = 'open' AND head_revision <> $2""", pull_id, head)


async def set_checks(conn: asyncpg.Connection, pull_id: int, *, head: str,
                     checks: dict[str, Any]) -> bool:
    """Store checks computed for ``head``; False (nothing stored) when the head moved since."""
    status = await conn.execute(
        "UPDATE pull_requests SET checks = $3 WHERE id = $1 AND head_revision = $2",
        pull_id, head, checks)
    return status.endswith(" 1")


async def add_review(conn: asyncpg.Connection, *, pull_id: int, person_id: int, username: str,
                     role: str, state: str, body: str, head: str) -> None:
    await conn.execute(
        """INSERT INTO pull_reviews (pull_id, person_id, username, role, state, body,
                                     head_revision)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        pull_id, person_id, username, role, state, body, head)
    await conn.execute("UPDATE pull_requests SET updated_at = now() WHERE id = $1", pull_id)


async def reviews(conn: asyncpg.Connection, pull_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    rows = await conn.fetch(
        """SELECT pull_id, person_id, username, role, state, body, head_revision AS head,
                  created_at
             FROM pull_reviews WHERE pull_id = ANY($1::bigint[]) ORDER BY id""", pull_ids)
    found: dict[int, list[dict[str, Any]]] = {i: [] for i in pull_ids}
    for row in rows:
        found[row["pull_id"]].append(dict(row))
    return found


async def mark_merged(conn: asyncpg.Connection, pull_id: int, *, merge_commit: str,
                      merged_by: int | None) -> None:
    status = await conn.execute(
        """UPDATE pull_requests SET status = 'merged', merged_revision = $2, merged_at = now(),
                  updated_at = now(), merged_by = $3
            WHERE id = $1 AND status = 'open'""", pull_id, merge_commit, merged_by)
    if not status.endswith(" 1"):
        raise ConflictError("the pull request is no longer open")


async def mark_closed(conn: asyncpg.Connection, pull_id: int) -> None:
    status = await conn.execute(
        """UPDATE pull_requests SET status = 'closed', closed_at = now(), updated_at = now()
            WHERE id = $1 AND status = 'open'""", pull_id)
    if not status.endswith(" 1"):
        raise ConflictError("only an open pull request can be closed")


async def try_merge_lock(conn: asyncpg.Connection, pull_id: int) -> bool:
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, $2::int)", _PULL_LOCK + 1,
                                    pull_id))


async def merge_unlock(conn: asyncpg.Connection, pull_id: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock($1, $2::int)", _PULL_LOCK + 1, pull_id)


async def observed_by_name(conn: asyncpg.Connection, *, tenant_id: int
                           ) -> dict[str, dict[str, Any]]:
    """Every registered appliance of the tenant: name -> latest observed JSON (or None) and
    the plan inventory Hearth keeps for it."""
    rows = await conn.fetch(
        """SELECT a.name, o.observed, s.inventory
             FROM appliances a
             LEFT JOIN observed_latest o ON o.appliance_id = a.id
             LEFT JOIN appliance_status s ON s.appliance_id = a.id
            WHERE a.tenant_id = $1""", tenant_id)
    return {r["name"]: {"observed": r["observed"],
                        "inventory": ((r["inventory"] or {}).get("plan") or {})} for r in rows}
