"""Runs left ``running`` by a dead worker, found within seconds by their lost lock.

A pass holds each of its appliances' PostgreSQL advisory locks on its own
connection from before its run row is written until after the row is finished
(``engine.reconcile.reconciler``; docs/architecture.md, invariant 4). When
the worker dies (kill -9, OOM, a lost machine), PostgreSQL ends its session
as soon as the socket closes and the locks go with it. So a ``running`` row
whose appliances' locks can be taken has lost its worker's session. It is
taken from the worker when, besides, the worker has stopped beating
(``engine.reconcile.liveness``; two missed beats, 4 s at the default 2 s): a
worker that is alive but lost its database connection for a moment may still
be running Ansible, and handing its appliances to another worker would run two
Ansible runs on one box. A SIGSTOPped worker keeps its session and its runs,
rightly: it may continue.

``reap`` (every worker runs ``reap_loop``, every ``REAP_INTERVAL`` seconds)
tries those locks, marks such runs ``interrupted``, stops their orphaned
Ansible processes when they run on this machine, ends the dead worker's queue
leases on their appliances and queues them again, so they are re-planned at
once rather than when the lease (a minute) runs out. Before, a stale run was
found only by the next pass to take the lock, which waited for that lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from engine.db import runs as run_db
from engine.execution.processes import kill_orphans
from engine.reconcile.liveness import alive_workers
from engine.reconcile.queue import ReconcileQueue
from engine.reconcile.reconciler import LOCK_NAMESPACE, LOCK_SQL

log = logging.getLogger("hearth.reaper")

REAP_INTERVAL = 2.0
"""Seconds between two looks for runs of dead workers."""


async def reap(pool: asyncpg.Pool, redis: Redis, queue: ReconcileQueue, *,
               runs_dir: Path) -> list[int]:
    """Mark runs of dead workers interrupted and re-queue their appliances; their ids."""
    async with pool.acquire() as conn:
        running = await conn.fetch("SELECT id, appliances, worker_id FROM reconcile_runs "
                                   "WHERE status = 'running'")
        if not running:
            return []
        alive = await alive_workers(redis)
        candidates = sorted({a for row in running if row["worker_id"] not in alive
                             for a in row["appliances"]}, key=str)
        free = []
        try:
            for appliance_id in candidates:
                if await conn.fetchval(LOCK_SQL, LOCK_NAMESPACE, str(appliance_id)):
                    free.append(appliance_id)
            if not free:
                return []
            interrupted = await run_db.interrupt_stale(conn, free)
            keys = [f"{r['tenant']}/{r['name']}" for r in await conn.fetch(
                """SELECT t.name AS tenant, a.name FROM appliances a
                     JOIN tenants t ON t.id = a.tenant_id
                    WHERE a.id IN (SELECT unnest(appliances) FROM reconcile_runs
                                    WHERE id = ANY($1::bigint[]))
                    ORDER BY 1, 2""", interrupted)]
        finally:
            for appliance_id in free:
                await conn.execute("SELECT pg_advisory_unlock($1::int, hashtext($2::text))",
                                   LOCK_NAMESPACE, str(appliance_id))
    if not interrupted:
        return []
    log.warning("runs %s were left running by a dead worker: marked interrupted", interrupted)
    killed = kill_orphans(runs_dir, interrupted)
    if killed:
        log.warning("stopped orphaned ansible processes %s", killed)
    for key in keys:
        await queue.expire(key)
        await queue.add(key)
    log.info("re-queued %s", keys)
    return interrupted


async def reap_loop(pool: asyncpg.Pool, redis: Redis, queue: ReconcileQueue, *,
                    runs_dir: Path, stop: asyncio.Event,
                    interval: float = REAP_INTERVAL) -> None:
    while not stop.is_set():
        try:
            await reap(pool, redis, queue, runs_dir=runs_dir)
        except Exception as exc:  # a database failover, Redis restarting: try again later
            log.warning("looking for interrupted runs failed: %r", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
