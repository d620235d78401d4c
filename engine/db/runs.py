"""SQL for reconcile runs, their event logs, and the appliance status they produce.

A run is one ansible-runner invocation over one or more appliances of one
tenant. Its row is written before Ansible starts (status ``running``) and
finished after; a run left ``running`` by a worker that died is found by the
next worker that takes the appliance's lock and marked ``interrupted``
(``interrupt_stale``): holding the lock proves nobody else is running it.

Manual syncs are durable requests: the API inserts a ``queued`` run row and
adds a queue hint; the worker claims the row (``claim_queued``) when it takes
the appliance, so a flushed Redis loses no request.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from engine.errors import NotFoundError

_RUN_COLUMNS = """r.id, t.name AS tenant, r.tenant_id, r.appliances, r.revision, r.plan, r.status,
    r.results, r.changed, r.failed, r.check_mode, r.trigger, r.worker_id, r.error,
    r.created_at, r.started_at, r.finished_at"""


async def create_run(conn: asyncpg.Connection, *, tenant_id: int, appliance_ids: list[uuid.UUID],
                     revision: str, plan: dict[str, Any], check_mode: bool, trigger: str,
                     worker_id: str | None, status: str = "running") -> int:
    started = "now()" if status == "running" else "NULL"
    return await conn.fetchval(
        f"""INSERT INTO reconcile_runs (tenant_id, appliances, revision, plan, status, check_mode,
                                         trigger, worker_id, started_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {started}) RETURNING id""",  # noqa: S608
        tenant_id, appliance_ids, revision, plan, status, check_mode, trigger, worker_id)


async def start_run(conn: asyncpg.Connection, run_id: int, *, worker_id: str, revision: str,
                    plan: dict[str, Any], appliance_ids: list[uuid.UUID]) -> None:
    await conn.execute(
        """UPDATE reconcile_runs SET status = 'running', started_at = now(), worker_id = $2,
               revision = $3, plan = $4, appliances = $5
           WHERE id = $1""",
        run_id, worker_id, revision, plan, appliance_ids)


async def finish_run(conn: asyncpg.Connection, run_id: int, *, status: str,
                     results: dict[str, Any], changed: int, failed: int,
                     error: str | None = None) -> None:
    await conn.execute(
        """UPDATE reconcile_runs SET status = $2, results = $3, changed = $4, failed = $5,
               error = $6, finished_at = now()
           WHERE id = $1 AND status IN ('queued', 'running')""",
        run_id, status, results, changed, failed, error)


async def append_events(conn: asyncpg.Connection, run_id: int,
                        events: list[tuple[int, str | None, str, dict[str, Any]]]) -> None:
    """Store (seq, host, event, data) rows; a replayed seq is ignored."""
    if not events:
        return
    await conn.executemany(
        """INSERT INTO run_events (run_id, seq, host, event, data) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (run_id, seq) DO NOTHING""",
        [(run_id, seq, host, event, data) for seq, host, event, data in events])


async def get_run(conn: asyncpg.Connection, run_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"SELECT {_RUN_COLUMNS} FROM reconcile_runs r JOIN tenants t ON t.id = r.tenant_id "  # noqa: S608
        "WHERE r.id = $1", run_id)
    if row is None:
        raise NotFoundError(f"run {run_id} not found")
    return dict(row)


async def events_after(conn: asyncpg.Connection, run_id: int, *, after: int = -1,
                       limit: int = 500) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT seq, host, event, data, at FROM run_events
           WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3""",
        run_id, after, limit)
    return [dict(r) for r in rows]


async def runs_of_appliance(conn: asyncpg.Connection, appliance_id: uuid.UUID, *,
                            limit: int = 20) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_RUN_COLUMNS} FROM reconcile_runs r JOIN tenants t ON t.id = r.tenant_id "  # noqa: S608
        "WHERE $1 = ANY(r.appliances) ORDER BY r.id DESC LIMIT $2", appliance_id, limit)
    return [dict(r) for r in rows]


async def last_finished_run(conn: asyncpg.Connection, appliance_id: uuid.UUID
                            ) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {_RUN_COLUMNS} FROM reconcile_runs r JOIN tenants t ON t.id = r.tenant_id "  # noqa: S608
        """WHERE $1 = ANY(r.appliances) AND NOT r.check_mode
             AND r.status IN ('succeeded', 'failed', 'interrupted')
           ORDER BY r.id DESC LIMIT 1""", appliance_id)
    return dict(row) if row else None


async def last_applied_run(conn: asyncpg.Connection, appliance_id: uuid.UUID
                           ) -> dict[str, Any] | None:
    """id, revision and finished_at of the last run that succeeded on the appliance.

    Ansible ran (``started_at`` is set: manual requests closed without a run are not
    runs) and every host of it succeeded (a run that failed anywhere is ``failed``).
    """
    row = await conn.fetchrow(
        """SELECT id, revision, finished_at FROM reconcile_runs
           WHERE $1 = ANY(appliances) AND NOT check_mode AND status = 'succeeded'
             AND started_at IS NOT NULL
           ORDER BY id DESC LIMIT 1""", appliance_id)
    return dict(row) if row else None


async def interrupt_stale(conn: asyncpg.Connection, appliance_ids: list[uuid.UUID]) -> list[int]:
    """Mark ``running`` runs touching these appliances interrupted; call with their locks held."""
    rows = await conn.fetch(
        """UPDATE reconcile_runs SET status = 'interrupted', finished_at = now(),
               error = coalesce(error, 'the worker running it stopped before it finished')
           WHERE status = 'running' AND appliances && $1::uuid[]
           RETURNING id""", appliance_ids)
    return [r["id"] for r in rows]


async def claim_queued(conn: asyncpg.Connection, appliance_id: uuid.UUID) -> list[dict[str, Any]]:
    """Queued manual sync requests for the appliance, oldest first (call with its lock held)."""
    rows = await conn.fetch(
        f"SELECT {_RUN_COLUMNS} FROM reconcile_runs r JOIN tenants t ON t.id = r.tenant_id "  # noqa: S608
        "WHERE r.status = 'queued' AND $1 = ANY(r.appliances) ORDER BY r.id", appliance_id)
    return [dict(r) for r in rows]


async def queued_appliances(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(tenant, appliance) of every queued request, for the resync to re-add."""
    rows = await conn.fetch(
        """SELECT DISTINCT t.name AS tenant, a.name AS appliance
           FROM reconcile_runs r JOIN tenants t ON t.id = r.tenant_id
           JOIN appliances a ON a.id = ANY(r.appliances)
           WHERE r.status = 'queued'""")
    return [(r["tenant"], r["appliance"]) for r in rows]


# --------------------------------------------------------------------------- #
# Status
# --------------------------------------------------------------------------- #


async def get_status(conn: asyncpg.Connection, appliance_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM appliance_status WHERE appliance_id = $1",
                              appliance_id)
    return dict(row) if row else None


async def upsert_status(conn: asyncpg.Connection, appliance_id: uuid.UUID, *, sync: str,
                        health: str, conditions: list[dict[str, Any]],
                        desired_revision: str | None, applied_revision: str | None,
                        observed_sequence: int | None, inventory: dict[str, Any],
                        plan_hash: str | None, consecutive_failures: int,
                        last_run_id: int | None) -> None:
    await conn.execute(
        """INSERT INTO appliance_status AS s (appliance_id, sync, health, conditions,
               desired_revision, applied_revision, observed_sequence, inventory, plan_hash,
               consecutive_failures, total_failures, last_run_id, updated_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, now())
           ON CONFLICT (appliance_id) DO UPDATE SET
               sync = excluded.sync, health = excluded.health, conditions = excluded.conditions,
               desired_revision = excluded.desired_revision,
               applied_revision = excluded.applied_revision,
               observed_sequence = excluded.observed_sequence, inventory = excluded.inventory,
               plan_hash = excluded.plan_hash,
               total_failures = s.total_failures
                   + greatest(excluded.consecutive_failures - s.consecutive_failures, 0),
               consecutive_failures = excluded.consecutive_failures,
               last_run_id = excluded.last_run_id, updated_at = now()""",
        appliance_id, sync, health, conditions, desired_revision, applied_revision,
        observed_sequence, inventory, plan_hash, consecutive_failures, last_run_id)


async def fleet(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(tenant, appliance) of every registered appliance."""
    rows = await conn.fetch(
        "SELECT t.name AS tenant, a.name AS appliance FROM appliances a "
        "JOIN tenants t ON t.id = a.tenant_id ORDER BY 1, 2")
    return [(r["tenant"], r["appliance"]) for r in rows]
