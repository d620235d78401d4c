"""``hearth worker``: claim appliance keys, group them by tenant, reconcile.

Any number of worker processes on any number of machines share one queue.
A worker claims a key, waits a moment (``gather_ms``) for the keys that
usually arrive together (a commit touching several appliances, a resync),
claims those too up to ``batch_size``, and reconciles each tenant's group in
one pass, so drifted appliances of one tenant converge in one Ansible run.
Alongside, every worker runs the resync loop (one of them acts per
interval), watches REPOS_DIR for moves of main, beats into Redis so readers
know it is alive (``liveness``) and looks every few seconds for runs a dead
worker left ``running`` (``reaper``).

Outcomes go back to the queue: success clears backoff; a failed run is
retried with backoff and counted per (appliance, revision, plan hash); an
appliance locked by another worker is re-queued shortly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from engine.db.migrate import apply_migrations
from engine.db.pool import create_pool
from engine.execution.ansible import AnsibleExecutor
from engine.reconcile.liveness import beat_loop
from engine.reconcile.queue import Claim, ReconcileQueue
from engine.reconcile.reaper import REAP_INTERVAL, reap_loop
from engine.reconcile.reconciler import Member, Outcome, Reconciler
from engine.reconcile.triggers import resync_loop, watch_heads
from engine.repos.reader import SnapshotReader
from engine.repos.store import RepoStore
from engine.settings import Settings

log = logging.getLogger("hearth.worker")


@dataclass(frozen=True)
class WorkerOptions:
    batch_size: int = 25
    gather_ms: int = 300
    resync_interval: float = 180.0
    roots_dir: Path | None = None
    watch: bool = True
    liveness_interval: float = 2.0
    """Seconds between the worker's beats (``engine.reconcile.liveness``)."""
    reap_interval: float = REAP_INTERVAL
    """Seconds between looks for runs of dead workers (``engine.reconcile.reaper``)."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(self, settings: Settings, options: WorkerOptions | None = None, *,
                 worker_id: str | None = None) -> None:
        self.settings = settings
        self.options = options or WorkerOptions()
        self.worker_id = worker_id or default_worker_id()

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        await apply_migrations(settings.database_url)
        pool = await create_pool(settings.database_url, min_size=2, max_size=6)
        redis = Redis.from_url(settings.redis_url)
        queue = ReconcileQueue(redis)
        reader = SnapshotReader()
        executor = AnsibleExecutor(data_dir=settings.data_dir)
        reconciler = Reconciler(
            settings=settings, pool=pool, redis=redis, queue=queue, reader=reader,
            executor=executor, worker_id=self.worker_id, roots_dir=self.options.roots_dir)
        tasks = [asyncio.create_task(resync_loop(pool, redis, queue,
                                                 interval=self.options.resync_interval,
                                                 stop=stop)),
                 asyncio.create_task(beat_loop(redis, self.worker_id,
                                               interval=self.options.liveness_interval,
                                               stop=stop)),
                 asyncio.create_task(reap_loop(pool, redis, queue, runs_dir=executor.runs_dir,
                                               stop=stop, interval=self.options.reap_interval))]
        if self.options.watch:
            tasks.append(asyncio.create_task(
                watch_heads(queue, reader, RepoStore(settings.repos_dir), stop=stop)))
        log.info("worker %s started", self.worker_id)
        try:
            while not stop.is_set():
                try:
                    claims = await self._gather(queue, stop)
                    if claims:
                        await self._process(reconciler, queue, claims)
                except Exception:
                    # Redis restarting, a database failover: the worker outlives them. What it
                    # held comes back when its lease expires; the resync re-derives the rest.
                    log.exception("worker loop failed; retrying shortly")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), random.uniform(1, 3))  # noqa: S311
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await redis.aclose()
            await pool.close()
            log.info("worker %s stopped", self.worker_id)

    async def _gather(self, queue: ReconcileQueue, stop: asyncio.Event) -> list[Claim]:
        first = await queue.claim(self.worker_id, block_ms=1000)
        if first is None:
            return []
        claims = [first]
        if self.options.gather_ms:
            await asyncio.sleep(self.options.gather_ms / 1000)
        while len(claims) < self.options.batch_size and not stop.is_set():
            more = await queue.claim(self.worker_id, block_ms=0)
            if more is None:
                break
            claims.append(more)
        return claims

    async def _process(self, reconciler: Reconciler, queue: ReconcileQueue,
                       claims: list[Claim]) -> None:
        groups: dict[str, list[Member]] = defaultdict(list)
        for claim in claims:
            tenant, _, name = claim.key.partition("/")
            groups[tenant].append(Member(name=name, claim=claim))
        for tenant, members in groups.items():
            try:
                report = await reconciler.reconcile(tenant, members)
                revision = report.revision
            except Exception as exc:  # one tenant's trouble must not stop the others
                log.exception("pass over %s failed", tenant)
                for member in members:
                    member.outcome = Outcome.RETRY
                    member.run_error = str(exc)
                revision = None
            for member in members:
                await self._settle(queue, member, revision)

    @staticmethod
    async def _settle(queue: ReconcileQueue, member: Member, revision: str | None) -> None:
        claim = member.claim
        if claim is None:
            return
        if member.outcome is Outcome.RETRY:
            await queue.retry(claim, error=member.run_error or "reconcile failed",
                              revision=revision,
                              plan_hash=member.plan.hash if member.plan else None)
        elif member.outcome is Outcome.BUSY:
            await queue.done(claim, reset_failures=False)
            await queue.add(claim.key, delay_ms=2000)
        elif member.outcome is Outcome.DONE and member.run_outcome == "succeeded":
            await queue.done(claim)
        else:
            await queue.done(claim, reset_failures=False)


def run_worker(settings: Settings, options: WorkerOptions) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Worker(settings, options).run(stop)

    asyncio.run(main())
    return 0
