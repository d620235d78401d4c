"""SQL for audit events: who did what to which target, and how it ended.

Details never hold secrets; callers pass token hints (last four characters),
never tokens or passwords.
"""

from __future__ import annotations

from typing import Any, Literal

import asyncpg

ActorKind = Literal["person", "appliance", "system", "anonymous"]
Outcome = Literal["success", "failure", "denied"]


async def record(
    conn: asyncpg.Connection | asyncpg.Pool, *, actor_kind: ActorKind, actor_id: str | None,
    action: str, outcome: Outcome, tenant_id: int | None = None, target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        """INSERT INTO audit_events
               (actor_kind, actor_id, tenant_id, action, target, outcome, details)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        actor_kind, actor_id, tenant_id, action, target, outcome, details or {},
    )


async def list_events(
    conn: asyncpg.Connection, *, tenant_id: int | None = None, limit: int = 100,
    before_id: int | None = None,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, at, actor_kind, actor_id, tenant_id, action, target, outcome, details
             FROM audit_events
            WHERE ($1::bigint IS NULL OR tenant_id = $1)
              AND ($2::bigint IS NULL OR id < $2)
            ORDER BY id DESC LIMIT $3""",
        tenant_id, before_id, limit,
    )
    return [dict(r) for r in rows]
