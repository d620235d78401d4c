"""SQL for heartbeats: the latest observed state per appliance and a bounded history.

``write_batch`` stores many heartbeats in one statement: an
``INSERT … SELECT FROM unnest(…) ON CONFLICT DO UPDATE WHERE excluded.sequence
> observed_latest.sequence``, with the history insert and prune as sibling
CTEs (one round trip, atomic without a BEGIN/COMMIT), so the sequence check is made by
PostgreSQL under the row lock and stays correct with any number of API
processes. A heartbeat whose sequence is not above the stored one is not
returned by the upsert and is reported as lost (the caller answers 409); only
winners go into the history, which is pruned to ``history_limit`` rows per
appliance in the same statement. Two heartbeats of one appliance in one
batch go in successive rounds (statements of one transaction), in arrival order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

DEFAULT_HISTORY_LIMIT = 32


@dataclass(frozen=True, slots=True)
class HeartbeatRow:
    appliance_id: uuid.UUID
    sequence: int
    sent_at: datetime
    received_at: datetime
    agent_version: str
    applied_revision: str | None
    observed: str
    """JSON text."""
    services: str
    """JSON text."""
    facts: str
    """JSON text."""


_UPSERT = """
WITH input AS (
    SELECT i.* FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::timestamptz[],
                           $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
         AS i(appliance_id, sequence, sent_at, received_at, agent_version, applied_revision,
              observed, services, facts)
    JOIN appliances a ON a.id = i.appliance_id
), upserted AS (
    INSERT INTO observed_latest AS o (appliance_id, sequence, sent_at, received_at, agent_version,
                                      applied_revision, observed, services, facts)
    SELECT appliance_id, sequence, sent_at, received_at, agent_version, applied_revision,
           observed::jsonb, services::jsonb, facts::jsonb
      FROM input
    ON CONFLICT (appliance_id) DO UPDATE SET
        sequence = excluded.sequence, sent_at = excluded.sent_at,
        received_at = excluded.received_at, agent_version = excluded.agent_version,
        applied_revision = excluded.applied_revision, observed = excluded.observed,
        services = excluded.services, facts = excluded.facts
     WHERE excluded.sequence > o.sequence
    RETURNING o.appliance_id, o.sequence, o.sent_at, o.received_at, o.applied_revision,
              o.observed, o.services, o.facts
), history AS (
    INSERT INTO observed_history (appliance_id, sequence, sent_at, received_at, applied_revision,
                                  observed, services, facts)
    SELECT * FROM upserted
    ON CONFLICT DO NOTHING
), pruned AS (
    -- Sibling CTEs see the snapshot from before the statement: keep the newest
    -- $10 - 1 older rows, so with the one inserted above each winner keeps $10.
    DELETE FROM observed_history h
     USING (SELECT u.appliance_id AS id,
                   (SELECT x.sequence FROM observed_history x
                     WHERE x.appliance_id = u.appliance_id
                     ORDER BY x.sequence DESC OFFSET $10 - 1 LIMIT 1) AS cutoff
              FROM upserted u) c
     WHERE h.appliance_id = c.id AND h.sequence <= c.cutoff
)
SELECT appliance_id FROM upserted
"""


def _rounds(rows: list[HeartbeatRow]) -> list[list[int]]:
    """Indexes of ``rows`` split so that each appliance appears once per round."""
    rounds: list[list[int]] = []
    seen: dict[uuid.UUID, int] = {}
    for index, row in enumerate(rows):
        n = seen.get(row.appliance_id, 0)
        seen[row.appliance_id] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(index)
    return rounds


async def _write_round(conn: asyncpg.Connection, rows: list[HeartbeatRow], indexes: list[int],
                       accepted: list[bool], history_limit: int) -> None:
    part = [rows[i] for i in indexes]
    won = {r["appliance_id"] for r in await conn.fetch(
        _UPSERT,
        [r.appliance_id for r in part], [r.sequence for r in part],
        [r.sent_at for r in part], [r.received_at for r in part],
        [r.agent_version for r in part], [r.applied_revision for r in part],
        [r.observed for r in part], [r.services for r in part], [r.facts for r in part],
        history_limit,
    )}
    for i in indexes:
        # a later round may hold the same appliance; only its own sequence counts
        accepted[i] = rows[i].appliance_id in won


async def write_batch(
    conn: asyncpg.Connection, rows: list[HeartbeatRow], *,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
) -> list[bool]:
    """Store ``rows``; per row, True when stored and False when its sequence was not newer.

    The usual batch (each appliance once) is a single statement, atomic on its
    own: one round trip, no BEGIN/COMMIT of its own. Repeats of an appliance
    add rounds, and then the rounds share one transaction.
    """
    if history_limit < 1:
        raise ValueError("history_limit must be at least 1")
    accepted = [False] * len(rows)
    rounds = _rounds(rows)
    if len(rounds) <= 1:
        if rounds:
            await _write_round(conn, rows, rounds[0], accepted, history_limit)
        return accepted
    async with conn.transaction():
        for indexes in rounds:
            await _write_round(conn, rows, indexes, accepted, history_limit)
    return accepted


async def latest(conn: asyncpg.Connection, appliance_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT appliance_id, sequence, sent_at, received_at, agent_version, applied_revision,
                  observed, services, facts
             FROM observed_latest WHERE appliance_id = $1""",
        appliance_id,
    )
    return dict(row) if row else None


async def history(
    conn: asyncpg.Connection, appliance_id: uuid.UUID, *, limit: int = 50
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT sequence, sent_at, received_at, applied_revision, observed, services, facts
             FROM observed_history WHERE appliance_id = $1 ORDER BY sequence DESC LIMIT $2""",
        appliance_id, limit,
    )
    return [dict(r) for r in rows]


class HeartbeatWriter:
    """Batches heartbeats from concurrent requests; ``store`` returns once durable.

    ``store(row)`` is True when the row was committed and False when its
    sequence was not above the stored one (nothing stored).
    """

    def __init__(
        self, pool: asyncpg.Pool, *, history_limit: int = DEFAULT_HISTORY_LIMIT,
        linger: float = 0.002, max_size: int = 500, max_in_flight: int = 2,
    ) -> None:
        from engine.db.batch import MicroBatcher

        self._pool = pool
        self._history_limit = history_limit
        self._batcher: MicroBatcher[HeartbeatRow, bool] = MicroBatcher(
            self._flush, max_size=max_size, linger=linger, max_in_flight=max_in_flight)

    async def _flush(self, rows: list[HeartbeatRow]) -> list[bool]:
        async with self._pool.acquire() as conn:
            return await write_batch(conn, rows, history_limit=self._history_limit)

    async def store(self, row: HeartbeatRow) -> bool:
        return await self._batcher.submit(row)

    async def close(self) -> None:
        await self._batcher.close()
