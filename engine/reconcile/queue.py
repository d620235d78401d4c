"""The reconcile work queue on Redis: which appliances to look at next, and when.

It is a hint, never the truth (docs/architecture.md, invariant 3). An entry says only
"look at appliance ``tenant/name``"; the worker re-reads desired state from git
and observed state from PostgreSQL and plans from scratch (level-triggered, as
controller-runtime). Losing the queue (FLUSHALL, a Redis restart, a failover)
loses nothing: the periodic resync re-adds every appliance and the planner
re-derives the work. Failure counts are lost too, which only means a stalled
appliance gets up to ``max_failures`` more tries.

Semantics, after client-go's ``workqueue`` (dirty and processing sets) and its
rate limiter, made safe across processes and machines:

- ``add(key, delay=)`` collapses: a key waiting in the queue is there once, at
  the earliest time any add asked for, but never before its backoff ends. A key
  being processed is marked dirty instead and queued again when its worker
  calls ``done`` or ``retry`` (so a change seen mid-run is never lost and never
  processed twice at once).
- ``claim(worker_id, block_ms=)`` hands a ready key to exactly one worker, with
  a lease (``lease_ms``) and a fencing token. ``extend`` renews the lease
  during a long run; a dead worker's lease expires and its key is queued again
  at the next claim by anyone (``expire`` ends it at once when the holder is
  known dead). A worker whose lease was lost gets False from
  ``done``/``retry``/``extend`` and must stop (the token also fences the
  per-appliance lock and run records, which are the real guarantee).
- ``done(claim)`` is success: the backoff and failure counts are cleared.
  ``done(claim, reset_failures=False)`` finishes without an outcome (e.g. the
  worker skipped a stalled plan).
- ``retry(claim, error=, revision=, plan_hash=)`` is a transient failure: the key
  comes back after ``base * 2**(attempts-1)`` capped at ``cap``, with equal
  jitter (half fixed, half random). Failures are also counted per
  (appliance, revision, plan hash): after ``max_failures`` of the same one the
  key is stalled and not retried by the queue; ``stalled(key, revision=,
  plan_hash=)`` tells a worker to skip it until the revision or plan changes,
  and ``reset(key)`` (a manual sync) clears it.

Every step is one Lua script (atomic on the server, using the server's clock so
workers' clocks do not matter). Keys live under ``hearth:queue:<shard>:``; the
per-appliance state key names the tenant (``...:state:<tenant>:<appliance>``)
and keys are checked to be ``tenant/appliance`` object names, so one tenant's
key can never address another's state. Shards let tenants be spread across
worker pools by hash.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass

from redis.asyncio import Redis

from engine.errors import InvalidInputError
from schemas.names import OBJECT_NAME

_POLL_MS = 50
_STATE_TTL_S = 7 * 24 * 3600

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: ready, processing, pending, state   ARGV: member, delay_ms
_ADD = _NOW + """
local at = now + tonumber(ARGV[2])
local retry_at = tonumber(redis.call('HGET', KEYS[4], 'retry_at') or '0')
if retry_at > at then at = retry_at end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  local current = redis.call('HGET', KEYS[3], ARGV[1])
  if (not current) or tonumber(current) > at then redis.call('HSET', KEYS[3], ARGV[1], at) end
  return 0
end
redis.call('ZADD', KEYS[1], 'LT', at, ARGV[1])
return 1
"""

# KEYS: ready, processing, pending, owners, fence   ARGV: worker_id, lease_ms
_CLAIM = _NOW + """
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
for _, member in ipairs(expired) do
  redis.call('ZREM', KEYS[2], member)
  redis.call('HDEL', KEYS[4], member)
  redis.call('HDEL', KEYS[3], member)
  redis.call('ZADD', KEYS[1], 'LT', now, member)
end
local ready = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
if #ready == 0 then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local lease = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  local wake = -1
  if first[2] then wake = tonumber(first[2]) end
  if lease[2] and (wake < 0 or tonumber(lease[2]) < wake) then wake = tonumber(lease[2]) end
  return {'', wake - now}
end
local member = ready[1]
redis.call('ZREM', KEYS[1], member)
local token = redis.call('INCR', KEYS[5])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), member)
redis.call('HSET', KEYS[4], member, token)
return {member, token}
"""

# KEYS: processing, owners   ARGV: member, token, lease_ms
_EXTEND = _NOW + """
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[3]), ARGV[1])
return 1
"""

# KEYS: processing   ARGV: member
_EXPIRE = _NOW + """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
return 1
"""

# KEYS: ready, processing, pending, owners, state   ARGV: member, token, reset
_DONE = _NOW + """
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
if ARGV[3] == '1' then redis.call('DEL', KEYS[5]) end
local pending = redis.call('HGET', KEYS[3], ARGV[1])
if pending then
  redis.call('HDEL', KEYS[3], ARGV[1])
  local at = tonumber(pending)
  local retry_at = tonumber(redis.call('HGET', KEYS[5], 'retry_at') or '0')
  if retry_at > at then at = retry_at end
  redis.call('ZADD', KEYS[1], 'LT', at, ARGV[1])
end
return 1
"""

# KEYS: ready, processing, pending, owners, state
# ARGV: member, token, fingerprint, error, base_ms, cap_ms, jitter_unit, max_failures, ttl_s
_RETRY = _NOW + """
if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[2] then return {0, 0, 0, 0, 0} end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
local attempts = tonumber(redis.call('HGET', KEYS[5], 'attempts') or '0') + 1
local count = 1
if redis.call('HGET', KEYS[5], 'fingerprint') == ARGV[3] then
  count = tonumber(redis.call('HGET', KEYS[5], 'count') or '0') + 1
end
local delay = tonumber(ARGV[5]) * (2 ^ (attempts - 1))
if delay > tonumber(ARGV[6]) then delay = tonumber(ARGV[6]) end
delay = math.floor(delay / 2 + tonumber(ARGV[7]) * delay / 2)
local stalled = 0
local retry_at = now + delay
if count >= tonumber(ARGV[8]) then
  stalled = 1
  retry_at = 0
end
redis.call('HSET', KEYS[5], 'attempts', attempts, 'count', count, 'fingerprint', ARGV[3],
           'error', ARGV[4], 'stalled', stalled, 'retry_at', retry_at, 'failed_at', now)
redis.call('EXPIRE', KEYS[5], tonumber(ARGV[9]))
local pending = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if stalled == 0 then
  redis.call('ZADD', KEYS[1], retry_at, ARGV[1])
elseif pending then
  redis.call('ZADD', KEYS[1], 'LT', tonumber(pending), ARGV[1])
end
return {1, attempts, count, stalled, retry_at}
"""


@dataclass(frozen=True, slots=True)
class Claim:
    """A key handed to one worker; ``token`` increases with every claim (a fencing token)."""

    key: str
    token: int
    worker_id: str


@dataclass(frozen=True, slots=True)
class FailureRecord:
    """What the queue remembers about a key's failures (gone after a success or reset)."""

    attempts: int
    """Consecutive failures of any kind; drives the backoff."""
    count: int
    """Consecutive failures with the same (revision, plan hash)."""
    revision: str | None
    plan_hash: str | None
    error: str
    stalled: bool
    retry_at_ms: int | None
    """Server time (ms) before which ``add`` will not make the key ready."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """Per-key retry delays: ``base * 2**(attempts-1)`` capped at ``cap``, with equal jitter."""

    base_ms: int = 1_000
    cap_ms: int = 300_000
    max_failures: int = 3
    """Failures of the same (appliance, revision, plan hash) before the key is stalled."""


def check_key(key: str) -> tuple[str, str]:
    """``tenant/appliance`` -> ``(tenant, appliance)``; anything else is refused."""
    tenant, _, name = key.partition("/")
    if not (OBJECT_NAME.fullmatch(tenant) and OBJECT_NAME.fullmatch(name)):
        raise InvalidInputError(f"queue key {key!r} is not 'tenant/appliance'")
    return tenant, name


def _fingerprint(revision: str | None, plan_hash: str | None) -> str:
    return f"{revision or ''}:{plan_hash or ''}"


class ReconcileQueue:
    """The queue of appliance keys for one shard of workers (see the module docstring)."""

    def __init__(
        self,
        redis: Redis,
        *,
        shard: str = "reconcile",
        lease_ms: int = 60_000,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not re.fullmatch(r"[a-z0-9-]{1,32}", shard):
            raise InvalidInputError(f"queue shard {shard!r} must be 1-32 of [a-z0-9-]")
        self._redis = redis
        self.prefix = f"hearth:queue:{shard}"
        self.lease_ms = lease_ms
        self.backoff = backoff or Backoff()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._ready = f"{self.prefix}:ready"
        self._processing = f"{self.prefix}:processing"
        self._pending = f"{self.prefix}:pending"
        self._owners = f"{self.prefix}:owners"
        self._fence = f"{self.prefix}:fence"
        self._add = redis.register_script(_ADD)
        self._claim = redis.register_script(_CLAIM)
        self._extend = redis.register_script(_EXTEND)
        self._done = redis.register_script(_DONE)
        self._expire = redis.register_script(_EXPIRE)
        self._retry = redis.register_script(_RETRY)

    def state_key(self, key: str) -> str:
        tenant, appliance = check_key(key)
        return f"{self.prefix}:state:{tenant}:{appliance}"

    async def add(self, key: str, *, delay_ms: int = 0) -> bool:
        """Queue ``key`` to be looked at after ``delay_ms``; False when it was marked dirty
        because a worker holds it."""
        keys = [self._ready, self._processing, self._pending, self.state_key(key)]
        return bool(await self._add(keys=keys, args=[key, max(0, int(delay_ms))]))

    async def claim(self, worker_id: str, *, block_ms: int = 0) -> Claim | None:
        """The next ready key for ``worker_id``, waiting up to ``block_ms``; None if none."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block_ms / 1000
        keys = [self._ready, self._processing, self._pending, self._owners, self._fence]
        while True:
            member, value = await self._claim(keys=keys, args=[worker_id, self.lease_ms])
            if member:
                key = member.decode() if isinstance(member, bytes) else member
                return Claim(key=key, token=int(value), worker_id=worker_id)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            wake_ms = int(value)
            # New adds do not wake us, so poll at least every _POLL_MS.
            wait_ms = _POLL_MS if wake_ms < 0 else max(1, min(wake_ms, _POLL_MS))
            await asyncio.sleep(min(remaining, wait_ms / 1000))

    async def extend(self, claim: Claim) -> bool:
        """Renew the lease; False when it was lost (expired and claimed by someone else)."""
        keys = [self._processing, self._owners]
        return bool(await self._extend(keys=keys,
                                       args=[claim.key, claim.token, self.lease_ms]))

    async def expire(self, key: str) -> bool:
        """End the lease on ``key`` now: its holder is known to be dead (its PostgreSQL
        session is gone), so the next claim hands the key out again instead of waiting for
        the lease to run out. The dead holder's token is fenced off as after any expiry.
        False when nobody held it."""
        check_key(key)
        return bool(await self._expire(keys=[self._processing], args=[key]))

    async def done(self, claim: Claim, *, reset_failures: bool = True) -> bool:
        """Finish ``claim``; success clears backoff and failure counts. False: lease lost."""
        keys = [self._ready, self._processing, self._pending, self._owners,
                self.state_key(claim.key)]
        args = [claim.key, claim.token, "1" if reset_failures else "0"]
        return bool(await self._done(keys=keys, args=args))

    async def retry(
        self,
        claim: Claim,
        *,
        error: str,
        revision: str | None = None,
        plan_hash: str | None = None,
    ) -> FailureRecord | None:
        """Finish ``claim`` as failed and schedule it with backoff (or stall it).

        Returns the updated failure record, or None when the lease was lost.
        """
        keys = [self._ready, self._processing, self._pending, self._owners,
                self.state_key(claim.key)]
        args = [
            claim.key, claim.token, _fingerprint(revision, plan_hash), error[:2000],
            self.backoff.base_ms, self.backoff.cap_ms, self._rng.random(),
            self.backoff.max_failures, _STATE_TTL_S,
        ]
        owned, attempts, count, stalled, retry_at = await self._retry(keys=keys, args=args)
        if not owned:
            return None
        return FailureRecord(
            attempts=int(attempts), count=int(count), revision=revision, plan_hash=plan_hash,
            error=error[:2000], stalled=bool(stalled),
            retry_at_ms=int(retry_at) or None,
        )

    async def failures(self, key: str) -> FailureRecord | None:
        """The failure record of ``key``, None when it has not failed since its last success."""
        raw = await self._redis.hgetall(self.state_key(key))
        if not raw:
            return None
        data = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }
        revision, _, plan_hash = data.get("fingerprint", ":").partition(":")
        return FailureRecord(
            attempts=int(data.get("attempts", 0)),
            count=int(data.get("count", 0)),
            revision=revision or None,
            plan_hash=plan_hash or None,
            error=data.get("error", ""),
            stalled=data.get("stalled") == "1",
            retry_at_ms=int(data.get("retry_at", 0)) or None,
        )

    async def stalled(self, key: str, *, revision: str | None, plan_hash: str | None) -> bool:
        """The same (revision, plan hash) already failed ``max_failures`` times: skip it."""
        record = await self.failures(key)
        return (
            record is not None
            and record.stalled
            and (record.revision, record.plan_hash) == (revision, plan_hash)
        )

    async def reset(self, key: str) -> None:
        """Forget failures and backoff of ``key`` and queue it now (a manual sync)."""
        await self._redis.delete(self.state_key(key))
        await self.add(key)

    async def depth(self) -> tuple[int, int]:
        """``(queued, being processed)``, for metrics and worker autoscaling."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self._ready)
            pipe.zcard(self._processing)
            queued, processing = await pipe.execute()
        return int(queued), int(processing)
