"""The four triggers of a reconcile. Each only adds appliance keys to the queue.

(a) **main moved**: ``enqueue_changed`` compares the snapshots of the old and
    new head and adds only the appliances whose own file, or a file they depend
    on (``tenant.yaml``, ``users.yaml``, ``groups.yaml``), changed. The merge
    path calls it directly; ``watch_heads`` calls it when watchfiles sees a
    ref of a repo under REPOS_DIR move (a push, another API replica's merge).
    A new head that fails validation adds every appliance of the tenant, so
    each one's status shows why it keeps the last good revision.
(b) **heartbeat differs**: ``HeartbeatTrigger.observe`` plans the observed
    state against the cached desired state and adds the key, debounced, when
    the plan is not empty or the appliance is not settled yet (a run awaits a
    confirming heartbeat). "Unsettled" is a Redis set the reconciler keeps; it
    is a hint like the queue, and the resync covers its loss.
(c) **periodic resync**: ``resync`` adds every registered appliance and every
    queued manual request; one worker does it per interval (a Redis lock),
    every worker runs the loop, so the fleet is re-derived from git and
    PostgreSQL even after Redis lost everything (docs/architecture.md, invariant 3).
(d) **manual sync**: the API stores a queued run row and calls ``add``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from engine.db import runs as run_db
from engine.db.batch import MicroBatcher
from engine.errors import ConfigError, HearthError, NotFoundError
from engine.reconcile.queue import ReconcileQueue
from engine.reconcile.source import DesiredSource
from engine.repos.reader import DesiredSnapshot, SnapshotReader
from engine.repos.store import RepoStore
from schemas.heartbeat import ObservedState
from schemas.plan import Plan

log = logging.getLogger("hearth.triggers")

UNSETTLED_KEY = "hearth:unsettled"
RESYNC_LOCK = "hearth:resync:lock"
HEARTBEAT_DEBOUNCE_MS = 1_000


async def enqueue_changed(queue: ReconcileQueue, reader: SnapshotReader, store: RepoStore, *,
                          tenant: str, old: str | None, new: str) -> list[str]:
    """Add the appliances whose desired state may differ between ``old`` and ``new``."""
    repo = store.open(tenant)
    previous: DesiredSnapshot | None = None
    if old is not None:
        with contextlib.suppress(ConfigError):
            previous = await asyncio.to_thread(reader.load, repo, old, tenant=tenant)
    try:
        current = await asyncio.to_thread(reader.load, repo, new, tenant=tenant)
    except ConfigError:
        names = previous.appliance_names() if previous is not None else []
        log.warning("main of %s moved to invalid %s; re-checking %d appliances", tenant,
                    new[:12], len(names))
    else:
        names = current.changed_appliances(previous) + current.removed_appliances(previous)
    for name in names:
        await queue.add(f"{tenant}/{name}")
    return names


async def resync(pool: asyncpg.Pool, queue: ReconcileQueue) -> int:
    """Add every registered appliance and every queued manual request."""
    async with pool.acquire() as conn:
        keys = set(await run_db.fleet(conn)) | set(await run_db.queued_appliances(conn))
    for tenant, name in sorted(keys):
        await queue.add(f"{tenant}/{name}")
    return len(keys)


async def resync_loop(pool: asyncpg.Pool, redis: Redis, queue: ReconcileQueue, *,
                      interval: float, stop: asyncio.Event) -> None:
    """Every ``interval`` seconds (jittered by ±10 %), one worker of the fleet resyncs."""
    rng = random.Random()  # noqa: S311 - jitter
    while not stop.is_set():
        try:
            if await redis.set(RESYNC_LOCK, "1", nx=True, px=int(interval * 900)):
                count = await resync(pool, queue)
                log.info("resync: %d appliances queued", count)
        except (OSError, asyncpg.PostgresError, HearthError) as exc:
            log.warning("resync failed: %s", exc)
        except Exception as exc:  # redis errors have their own hierarchy
            log.warning("resync failed: %r", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval * rng.uniform(0.9, 1.1))


async def watch_heads(queue: ReconcileQueue, reader: SnapshotReader, store: RepoStore, *,
                      stop: asyncio.Event, on_change: Callable[[str, str | None, str],
                                                               Awaitable[None]] | None = None
                      ) -> None:
    """Watch REPOS_DIR for moves of any tenant's main and enqueue what changed."""
    # only the worker watches; the API imports this module too
    from watchfiles import awatch

    store.repos_dir.mkdir(parents=True, exist_ok=True)
    heads: dict[str, str | None] = {}
    for tenant in store.tenants():
        with contextlib.suppress(HearthError):
            heads[tenant] = store.head(tenant)

    async def check(tenant: str) -> None:
        try:
            new = store.head(tenant)
        except (HearthError, OSError):
            return
        old = heads.get(tenant)
        if new is None or new == old:
            return
        heads[tenant] = new
        log.info("main of %s moved %s -> %s", tenant, (old or "none")[:12], new[:12])
        names = await enqueue_changed(queue, reader, store, tenant=tenant, old=old, new=new)
        log.info("queued %s", names)
        if on_change is not None:
            await on_change(tenant, old, new)

    async for changes in awatch(store.repos_dir, stop_event=stop, debounce=50, step=20,
                                recursive=True):
        tenants = set()
        for _, path in changes:
            relative = Path(path).relative_to(store.repos_dir).parts
            if len(relative) >= 2 and relative[0].endswith(".git") and (
                    relative[1] in ("refs", "packed-refs", "HEAD")):
                tenants.add(relative[0].removesuffix(".git"))
        for tenant in sorted(tenants):
            try:
                await check(tenant)
            except Exception:
                log.exception("could not enqueue changes of %s", tenant)


class HeartbeatTrigger:
    """Decides, per heartbeat, whether the appliance needs a reconcile pass.

    ``observe`` enqueues ``tenant/name`` (debounced) when the observed state
    differs from desired state at the head of main, or the appliance is in
    ``hearth:unsettled``. Two things keep it cheap at thousands of heartbeats
    a second:

    - the verdict is remembered per appliance as (head, digest of the observed
      JSON, differs): an unchanged report against an unchanged head is not
      planned again. The memo lasts ``memo_ttl`` seconds, because a plan also
      depends on the clock (certificate renewal windows); a renewal falling due
      is therefore noticed at most ``memo_ttl`` late (the resync covers it too);
    - the Redis work of concurrent heartbeats goes in one batch: one
      ``SMISMEMBER`` for those that match desired state, then one pipeline of
      queue adds (the queue's own script, atomic per key as ever). ``observe``
      still returns only once its key is queued.
    """

    def __init__(self, *, queue: ReconcileQueue, redis: Redis, source: DesiredSource,
                 head_ttl: float = 1.0, memo_ttl: float = 60.0) -> None:
        self.queue = queue
        self.redis = redis
        self.source = source
        self.head_ttl = head_ttl
        self.memo_ttl = memo_ttl
        self._memo: dict[str, tuple[float, str, bytes, bool]] = {}
        """``tenant/name`` -> (when, head, observed digest, differs)."""
        self._batcher: MicroBatcher[tuple[str, bool], bool] = MicroBatcher(
            self._flush, max_size=1000, linger=0.0, max_in_flight=2)

    def differs(self, tenant: str, name: str, observed: ObservedState, *,
                observed_json: str | None = None) -> bool:
        """True when the observed state differs from desired at the head of main.

        ``observed_json`` (the caller's serialisation of ``observed``, if it has
        one) saves serialising it again for the memo digest.
        """
        head = self.source.head(tenant, max_age=self.head_ttl)
        if head is None:
            return False
        if observed_json is None:
            observed_json = observed.model_dump_json()
        digest = hashlib.blake2b(observed_json.encode(), digest_size=16).digest()
        key = f"{tenant}/{name}"
        now = time.monotonic()
        memo = self._memo.get(key)
        if memo is not None and memo[1] == head and memo[2] == digest and \
                now - memo[0] < self.memo_ttl:
            return memo[3]
        result = self._plan_differs(tenant, name, observed, head)
        if len(self._memo) > 100_000:
            self._memo.clear()
        self._memo[key] = (now, head, digest, result)
        return result

    def _plan_differs(self, tenant: str, name: str, observed: ObservedState, head: str) -> bool:
        plan = self.plan(tenant, name, observed, head=head)
        return plan is None or not plan.empty

    def plan(self, tenant: str, name: str, observed: ObservedState, *, head: str
             ) -> Plan | None:
        """The plan this trigger judges a heartbeat by (``DesiredSource.heartbeat_plan``);
        None when ``head`` does not validate or lacks the appliance (a difference: the
        worker records why)."""
        try:
            return self.source.heartbeat_plan(tenant, name, observed, revision=head,
                                              now=datetime.now(UTC))
        except (ConfigError, NotFoundError):
            return None

    async def observe(self, tenant: str, name: str, observed: ObservedState, *,
                      observed_json: str | None = None) -> bool:
        """Enqueue ``tenant/name`` (debounced) when it differs or is not settled."""
        # ~0.1 ms of CPU when not remembered: cheaper than a thread hop
        differs = self.differs(tenant, name, observed, observed_json=observed_json)
        return await self._batcher.submit((f"{tenant}/{name}", differs))

    async def _flush(self, items: list[tuple[str, bool]]) -> list[bool]:
        check = sorted({key for key, differs in items if not differs})
        unsettled: set[str] = set()
        if check:
            flags = await self.redis.smismember(UNSETTLED_KEY, check)
            unsettled = {key for key, flag in zip(check, flags, strict=True) if flag}
        enqueue = [differs or key in unsettled for key, differs in items]
        keys = sorted({key for (key, _), add in zip(items, enqueue, strict=True) if add})
        if keys:
            async with self.redis.pipeline(transaction=False) as pipe:
                # The queue's add, bound to the pipeline: same script, one round trip.
                batch = ReconcileQueue(pipe, shard=self.queue.prefix.rsplit(":", 1)[1])
                for key in keys:
                    await batch.add(key, delay_ms=HEARTBEAT_DEBOUNCE_MS)
                await pipe.execute()
        return enqueue

    async def close(self) -> None:
        await self._batcher.close()


async def mark_settled(redis: Redis, key: str, *, settled: bool) -> None:
    if settled:
        await redis.srem(UNSETTLED_KEY, key)
    else:
        await redis.sadd(UNSETTLED_KEY, key)
