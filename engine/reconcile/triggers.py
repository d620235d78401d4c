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
    PostgreSQL even after Redis lost everything (DESIGN.md invariant 3).
(d) **manual sync**: the API stores a queued run row and calls ``add``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from redis.asyncio import Redis

from engine.db import runs as run_db
from engine.errors import ConfigError, HearthError, NotFoundError
from engine.planning.normalize import CanonicalState, normalize_desired
from engine.planning.plan import build_plan
from engine.reconcile.queue import ReconcileQueue
from engine.repos.reader import DesiredSnapshot, SnapshotReader
from engine.repos.store import RepoStore
from schemas.heartbeat import ObservedState
from schemas.plan import Inventory

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
    """Decides, per heartbeat, whether the appliance needs a reconcile pass."""

    def __init__(self, *, queue: ReconcileQueue, redis: Redis, reader: SnapshotReader,
                 store: RepoStore, head_ttl: float = 1.0) -> None:
        self.queue = queue
        self.redis = redis
        self.reader = reader
        self.store = store
        self.head_ttl = head_ttl
        self._heads: dict[str, tuple[float, str | None]] = {}
        self._canonical: dict[tuple[str, str, str], CanonicalState] = {}

    def _head(self, tenant: str) -> str | None:
        now = time.monotonic()
        cached = self._heads.get(tenant)
        if cached is not None and now - cached[0] < self.head_ttl:
            return cached[1]
        head = self.store.head(tenant)
        self._heads[tenant] = (now, head)
        return head

    def differs(self, tenant: str, name: str, observed: ObservedState) -> bool:
        """True when the observed state differs from desired at the head of main."""
        head = self._head(tenant)
        if head is None:
            return False
        try:
            snapshot = self.reader.load(self.store.open(tenant), head, tenant=tenant)
            desired = snapshot.desired(name)
        except (ConfigError, NotFoundError):
            return True  # let the worker record why
        key = (tenant, name, head)
        canonical = self._canonical.get(key)
        if canonical is None:
            if len(self._canonical) > 100_000:
                self._canonical.clear()
            canonical = self._canonical[key] = normalize_desired(desired)
        plan = build_plan(desired=desired, observed=observed, inventory=Inventory(),
                          policy=desired.policies, revision=head, now=datetime.now(UTC),
                          desired_canonical=canonical)
        return not plan.empty

    async def observe(self, tenant: str, name: str, observed: ObservedState) -> bool:
        """Enqueue ``tenant/name`` (debounced) when it differs or is not settled."""
        key = f"{tenant}/{name}"
        differs = self.differs(tenant, name, observed)  # ~0.1 ms of CPU: cheaper than a thread hop
        if differs or await self.redis.sismember(UNSETTLED_KEY, key):
            await self.queue.add(key, delay_ms=HEARTBEAT_DEBOUNCE_MS)
            return True
        return False


async def mark_settled(redis: Redis, key: str, *, settled: bool) -> None:
    if settled:
        await redis.srem(UNSETTLED_KEY, key)
    else:
        await redis.sadd(UNSETTLED_KEY, key)
