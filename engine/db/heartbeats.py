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

from engine.db.batch import MicroBatcher

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
    token_hash: bytes | None = None
    """For ``write_batch_by_token``: the appliance is the live token's, found in the write."""
    applied_run: int | None = None
    """The run the box says last converged it (None: an agent that does not report it)."""


# The steps both writes share once ``input`` holds one row per appliance: upsert the
# newest observation when its sequence is higher, append it to the history, prune the
# history to the limit ({limit}: the statement's parameter holding it).
_STORE = """), upserted AS (
    INSERT INTO observed_latest AS o (appliance_id, sequence, sent_at, received_at, agent_version,
                                      applied_revision, observed, services, facts, applied_run)
    SELECT appliance_id, sequence, sent_at, received_at, agent_version, applied_revision,
           observed::jsonb, services::jsonb, facts::jsonb, applied_run
      FROM input
    ON CONFLICT (appliance_id) DO UPDATE SET
        sequence = excluded.sequence, sent_at = excluded.sent_at,
        received_at = excluded.received_at, agent_version = excluded.agent_version,
        applied_revision = excluded.applied_revision, observed = excluded.observed,
        services = excluded.services, facts = excluded.facts, applied_run = excluded.applied_run
     WHERE excluded.sequence > o.sequence
    RETURNING o.appliance_id, o.sequence, o.sent_at, o.received_at, o.applied_revision,
              o.observed, o.services, o.facts, o.applied_run
), history AS (
    INSERT INTO observed_history (appliance_id, sequence, sent_at, received_at, applied_revision,
                                  observed, services, facts, applied_run)
    SELECT * FROM upserted
    ON CONFLICT DO NOTHING
), pruned AS (
    -- Sibling CTEs see the snapshot from before the statement: keep the newest
    -- {limit} - 1 older rows, so with the one inserted above each winner keeps {limit}.
    DELETE FROM observed_history h
     USING (SELECT u.appliance_id AS id,
                   (SELECT x.sequence FROM observed_history x
                     WHERE x.appliance_id = u.appliance_id
                     ORDER BY x.sequence DESC OFFSET {limit} - 1 LIMIT 1) AS cutoff
              FROM upserted u) c
     WHERE h.appliance_id = c.id AND h.sequence <= c.cutoff
)
"""

_UPSERT = """
WITH input AS (
    SELECT i.* FROM unnest($1::uuid[], $2::bigint[], $3::timestamptz[], $4::timestamptz[],
                           $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                           $11::bigint[])
         AS i(appliance_id, sequence, sent_at, received_at, agent_version, applied_revision,
              observed, services, facts, applied_run)
    JOIN appliances a ON a.id = i.appliance_id
{store}SELECT appliance_id FROM upserted
""".format(store=_STORE.format(limit="$10"))  # noqa: S608 - our own constant text


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
        history_limit, [r.applied_run for r in part],
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


_WRITE_BY_HASH = """
WITH resolved AS (
    SELECT i.*, a.id AS appliance_id, a.tenant_id, t.name AS tenant, a.name
      FROM unnest($1::int[], $2::bytea[], $3::bigint[], $4::timestamptz[], $5::timestamptz[],
                  $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $12::bigint[])
           AS i(ord, token_hash, sequence, sent_at, received_at, agent_version,
                applied_revision, observed, services, facts, applied_run)
      JOIN appliance_tokens k ON k.token_hash = i.token_hash AND k.revoked_at IS NULL
      JOIN appliances a ON a.id = k.appliance_id
      JOIN tenants t ON t.id = a.tenant_id
), input AS (
    -- one row per appliance per statement, even if two of its tokens are live
    SELECT DISTINCT ON (appliance_id) * FROM resolved ORDER BY appliance_id, ord
{store}SELECT r.ord, r.appliance_id, r.tenant_id, r.tenant, r.name,
       x.ord IS NOT NULL AS tried, u.appliance_id IS NOT NULL AND x.ord IS NOT NULL AS won
  FROM resolved r
  LEFT JOIN input x ON x.ord = r.ord
  LEFT JOIN upserted u ON u.appliance_id = r.appliance_id
""".format(store=_STORE.format(limit="$11"))  # noqa: S608 - our own constant text


@dataclass(frozen=True, slots=True)
class TokenWrite:
    """What ``write_batch_by_token`` did with one row of a live token."""

    appliance: dict[str, Any]
    """appliance_id, tenant_id, tenant, name (as ``TokenResolver`` gives them)."""
    accepted: bool
    """False when the sequence was not above the stored one (nothing stored)."""


async def write_batch_by_token(
    conn: asyncpg.Connection, rows: list[HeartbeatRow], *,
    history_limit: int = DEFAULT_HISTORY_LIMIT,
) -> list[TokenWrite | None]:
    """Store ``rows`` keyed by ``token_hash``, resolving each token in the same statement.

    Per row: None when the token is unknown or revoked (nothing stored), else
    the token's appliance and whether the row was stored. The lookup and the
    write are one snapshot, so a revocation committed before the statement
    stops the token at once. Rows go in rounds (one statement each, sharing a
    transaction when there are several) so that each token, and each appliance,
    appears once per statement.
    """
    if history_limit < 1:
        raise ValueError("history_limit must be at least 1")
    results: list[TokenWrite | None] = [None] * len(rows)

    async def round_(indexes: list[int]) -> list[int]:
        part = [rows[i] for i in indexes]
        records = await conn.fetch(
            _WRITE_BY_HASH, list(range(len(part))), [r.token_hash for r in part],
            [r.sequence for r in part], [r.sent_at for r in part],
            [r.received_at for r in part], [r.agent_version for r in part],
            [r.applied_revision for r in part], [r.observed for r in part],
            [r.services for r in part], [r.facts for r in part], history_limit,
            [r.applied_run for r in part])
        retry = []
        for rec in records:
            index = indexes[rec["ord"]]
            if not rec["tried"]:  # another live token of the same appliance went first
                retry.append(index)
                continue
            results[index] = TokenWrite(
                appliance={"appliance_id": rec["appliance_id"], "tenant_id": rec["tenant_id"],
                           "tenant": rec["tenant"], "name": rec["name"]},
                accepted=rec["won"])
        return retry

    def split(indexes: list[int]) -> tuple[list[int], list[int]]:
        now, later, seen = [], [], set()
        for i in indexes:
            (later if rows[i].token_hash in seen else now).append(i)
            seen.add(rows[i].token_hash)
        return now, later

    pending = list(range(len(rows)))
    if not pending:
        return results
    now, later = split(pending)
    if not later:  # the usual batch: one statement, atomic on its own
        pending = await round_(now)
        if not pending:
            return results
    async with conn.transaction():
        while pending:
            now, later = split(pending)
            pending = sorted(await round_(now) + later)
    return results


async def last_sequence(conn: asyncpg.Connection | asyncpg.Pool, appliance_id: uuid.UUID) -> int:
    """The highest sequence stored for the appliance (0 before its first heartbeat).

    What an agent that lost its state directory resumes above (re-enrolment). The
    stored sequence is never lowered, so heartbeats captured earlier stay refused.
    """
    value = await conn.fetchval(
        "SELECT sequence FROM observed_latest WHERE appliance_id = $1", appliance_id)
    return int(value) if value is not None else 0


async def latest(conn: asyncpg.Connection, appliance_id: uuid.UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        """SELECT appliance_id, sequence, sent_at, received_at, agent_version, applied_revision,
                  applied_run, observed, services, facts
             FROM observed_latest WHERE appliance_id = $1""",
        appliance_id,
    )
    return dict(row) if row else None


async def history(
    conn: asyncpg.Connection, appliance_id: uuid.UUID, *, limit: int = 50
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT sequence, sent_at, received_at, applied_revision, applied_run, observed,
                  services, facts
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
        self._pool = pool
        self._history_limit = history_limit
        self._batcher: MicroBatcher[HeartbeatRow, bool] = MicroBatcher(
            self._flush, max_size=max_size, linger=linger, max_in_flight=max_in_flight)
        self._by_token: MicroBatcher[HeartbeatRow, TokenWrite | None] = MicroBatcher(
            self._flush_by_token, max_size=max_size, linger=linger,
            max_in_flight=max_in_flight)

    async def _flush(self, rows: list[HeartbeatRow]) -> list[bool]:
        async with self._pool.acquire() as conn:
            return await write_batch(conn, rows, history_limit=self._history_limit)

    async def _flush_by_token(self, rows: list[HeartbeatRow]) -> list[TokenWrite | None]:
        async with self._pool.acquire() as conn:
            return await write_batch_by_token(conn, rows, history_limit=self._history_limit)

    async def store(self, row: HeartbeatRow) -> bool:
        return await self._batcher.submit(row)

    async def store_by_token(self, row: HeartbeatRow) -> TokenWrite | None:
        """Store a row whose ``token_hash`` names the appliance: token lookup and write in
        one round trip. None when the token is unknown or revoked (nothing stored)."""
        return await self._by_token.submit(row)

    async def close(self) -> None:
        await self._batcher.close()
        await self._by_token.close()
