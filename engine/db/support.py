"""SQL for support requests (the assistant's inbox).

A request is inserted before anything else happens to it (the model may be
slow or down: nothing is lost), with ``status = 'queued'``. The worker moves it
to ``waiting_for_model`` (the model did not answer; ``next_attempt_at`` says
when it is tried again), or to a final state: ``answered``, ``question``,
``refused``, ``pull_request_opened``, ``failed``. A final state is written
with ``WHERE status IN (pending states)``, so two workers that both picked
the same request (a queue entry re-added by the resync) cannot both finish it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from engine.errors import NotFoundError

PENDING = ("received", "queued", "waiting_for_model")

_COLUMNS = """s.id, s.tenant_id, t.name AS tenant, s.requested_by, p.username AS requester,
              s.role, s.appliance, s.conversation_id, s.text, s.status, s.reply_kind,
              s.answer, s.intents, s.attempts, s.next_attempt_at, s.error, s.model,
              s.pull_number, s.created_at, s.updated_at"""
_FROM = """support_requests s JOIN tenants t ON t.id = s.tenant_id
           LEFT JOIN people p ON p.id = s.requested_by"""


async def insert_request(conn: asyncpg.Connection, *, tenant_id: int, person_id: int | None,
                         role: str, text: str, appliance: str | None,
                         conversation_id: int | None) -> dict[str, Any]:
    new_id = await conn.fetchval(
        """INSERT INTO support_requests (tenant_id, requested_by, role, text, appliance,
                                         conversation_id, status)
           VALUES ($1, $2, $3, $4, $5, $6, 'queued') RETURNING id""",
        tenant_id, person_id, role, text, appliance, conversation_id)
    return await get_request(conn, new_id)


async def get_request(conn: asyncpg.Connection, request_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM {_FROM} WHERE s.id = $1",  # noqa: S608
                              request_id)
    if row is None:
        raise NotFoundError(f"support request {request_id} not found")
    return dict(row)


async def tenant_of(conn: asyncpg.Connection, request_id: int) -> dict[str, Any] | None:
    if not 0 < request_id < 2**63:
        return None
    row = await conn.fetchrow(
        "SELECT t.id, t.name FROM support_requests s JOIN tenants t ON t.id = s.tenant_id "
        "WHERE s.id = $1", request_id)
    return dict(row) if row else None


async def list_requests(conn: asyncpg.Connection, *, tenant_ids: list[int],
                        person_id: int | None, status: str | None, limit: int
                        ) -> list[dict[str, Any]]:
    """Newest first, in ``tenant_ids``; only ``person_id``'s own when it is given."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM {_FROM}
            WHERE s.tenant_id = ANY($1::bigint[])
              AND ($2::bigint IS NULL OR s.requested_by = $2)
              AND ($3::text IS NULL OR s.status = $3)
            ORDER BY s.id DESC LIMIT $4""",  # noqa: S608
        tenant_ids, person_id, status, limit)
    return [dict(r) for r in rows]


async def conversation(conn: asyncpg.Connection, *, root: int, before: int
                       ) -> list[dict[str, Any]]:
    """Earlier turns of a conversation (its first request and the ones that continued it)."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM {_FROM}
            WHERE (s.id = $1 OR s.conversation_id = $1) AND s.id < $2
            ORDER BY s.id LIMIT 10""",  # noqa: S608
        root, before)
    return [dict(r) for r in rows]


async def mark_waiting(conn: asyncpg.Connection, request_id: int, *, error: str,
                       next_attempt_at: datetime) -> int:
    """The model did not answer: count the attempt, say why, and when it is tried again."""
    return await conn.fetchval(
        """UPDATE support_requests SET status = 'waiting_for_model', error = $2,
                  attempts = attempts + 1, next_attempt_at = $3, updated_at = now()
           WHERE id = $1 AND status = ANY($4::text[]) RETURNING attempts""",
        request_id, error[:500], next_attempt_at, list(PENDING)) or 0


async def finish(conn: asyncpg.Connection, request_id: int, *, status: str,
                 reply_kind: str | None, answer: str | None, intents: list[dict[str, Any]],
                 model: str | None, raw_reply: str | None, error: str | None = None,
                 pull_number: int | None = None) -> bool:
    """Record the outcome; False when another worker finished the request first."""
    found = await conn.fetchval(
        """UPDATE support_requests SET status = $2, reply_kind = $3, answer = $4,
                  intents = $5::jsonb, model = $6, raw_reply = $7, error = $8,
                  pull_number = $9, attempts = attempts + 1, updated_at = now()
           WHERE id = $1 AND status = ANY($10::text[]) RETURNING id""",
        request_id, status, reply_kind, answer, intents, model,
        None if raw_reply is None else raw_reply[:20_000], error, pull_number, list(PENDING))
    return found is not None


async def due(conn: asyncpg.Connection, *, now: datetime, limit: int = 100) -> list[int]:
    """Pending requests whose next attempt is due (the resync re-queues them)."""
    rows = await conn.fetch(
        """SELECT id FROM support_requests
           WHERE status = ANY($1::text[]) AND next_attempt_at <= $2
           ORDER BY next_attempt_at LIMIT $3""", list(PENDING), now, limit)
    return [r["id"] for r in rows]


async def pull_of(conn: asyncpg.Connection, *, tenant_id: int, number: int
                  ) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT number, status, merged_revision, head_revision FROM pull_requests
           WHERE tenant_id = $1 AND number = $2""", tenant_id, number)
    return dict(row) if row else None


async def applied_revisions(conn: asyncpg.Connection, *, tenant_id: int,
                            appliances: list[str]) -> dict[str, str | None]:
    """Applied revision of each named, registered appliance of the tenant."""
    rows = await conn.fetch(
        """SELECT a.name, s.applied_revision FROM appliances a
           LEFT JOIN appliance_status s ON s.appliance_id = a.id
           WHERE a.tenant_id = $1 AND a.name = ANY($2::text[])""", tenant_id, appliances)
    return {r["name"]: r["applied_revision"] for r in rows}
