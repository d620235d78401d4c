"""Which reconcile workers are alive: every worker beats into Redis, anyone can ask.

A status table is only as fresh as the workers behind it: with none running,
every appliance keeps the status of the last pass, however long ago. So each
worker beats every ``interval`` seconds (``beat_loop``) and readers
(``/ready``, ``hearth app list`` through it) ask ``fleet_liveness``.

One Redis sorted set, ``hearth:workers``: member the worker id, score the
server time (ms) by which its next beat is overdue, ``MISSED_BEATS`` intervals
after the beat; a hash beside it keeps each worker's last beat. Both times are
Redis's own clock (``TIME`` inside the script), so neither workers' nor API
processes' clocks matter, and a reader needs no setting: each worker states its
own interval through its deadline. A worker is alive while its deadline is
ahead; a worker that is stopped (SIGSTOP), hung or dead stops beating and is
reported within ``MISSED_BEATS`` of its intervals. Entries of workers gone
for a day are pruned by the next beat. Redis losing the set (FLUSHALL) makes
every worker look dead until its next beat, one interval at most.

``engine.reconcile.reaper`` asks ``alive_workers`` too: a run is taken from its
worker only when both its PostgreSQL session and its beats are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from redis.asyncio import Redis

log = logging.getLogger("hearth.liveness")

WORKERS_KEY = "hearth:workers"
LAST_BEAT_KEY = "hearth:workers:last-beat"
MISSED_BEATS = 2
"""Intervals without a beat after which a worker is not counted alive."""
_FORGET_MS = 24 * 3600 * 1000

# KEYS: workers, last beat   ARGV: worker id, interval ms, missed beats, forget ms
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]) * tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], now)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[4]))
for _, member in ipairs(gone) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('HDEL', KEYS[2], member)
end
return now
"""

# KEYS: workers, last beat   -> {now, alive, newest beat or -1}
_READ = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local alive = redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
local newest = -1
for _, value in ipairs(redis.call('HVALS', KEYS[2])) do
  if tonumber(value) > newest then newest = tonumber(value) end
end
return {now, alive, newest}
"""


# KEYS: workers   -> ids of the workers alive now
_ALIVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""


@dataclass(frozen=True, slots=True)
class FleetLiveness:
    """What ``fleet_liveness`` found."""

    alive: int
    """Workers whose last beat is less than ``MISSED_BEATS`` of their intervals old."""
    last_beat_age: float | None
    """Seconds since any worker last beat; None when none ever did (or Redis forgot)."""

    @property
    def stale(self) -> bool:
        """No worker is alive: statuses are not being kept current."""
        return self.alive == 0

    def describe(self) -> str:
        if not self.stale:
            return f"{self.alive} worker(s) alive"
        if self.last_beat_age is None:
            return "no worker has been seen"
        return f"no worker alive for {self.last_beat_age:.0f} s"


async def beat(redis: Redis, worker_id: str, *, interval: float) -> None:
    """Record that ``worker_id`` is alive and beats every ``interval`` seconds."""
    await redis.eval(_BEAT, 2, WORKERS_KEY, LAST_BEAT_KEY, worker_id,
                     max(1, int(interval * 1000)), MISSED_BEATS, _FORGET_MS)


async def forget(redis: Redis, worker_id: str) -> None:
    """A worker stopping cleanly leaves the set at once."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrem(WORKERS_KEY, worker_id)
        pipe.hdel(LAST_BEAT_KEY, worker_id)
        await pipe.execute()


async def fleet_liveness(redis: Redis) -> FleetLiveness:
    now, alive, newest = await redis.eval(_READ, 2, WORKERS_KEY, LAST_BEAT_KEY)
    age = None if int(newest) < 0 else max(0.0, (int(now) - int(newest)) / 1000)
    return FleetLiveness(alive=int(alive), last_beat_age=age)


async def alive_workers(redis: Redis) -> set[str]:
    """Ids of the workers whose last beat is recent enough (see the module docstring)."""
    return {m.decode() if isinstance(m, bytes) else m
            for m in await redis.eval(_ALIVE, 1, WORKERS_KEY)}


async def beat_loop(redis: Redis, worker_id: str, *, interval: float,
                    stop: asyncio.Event) -> None:
    """Beat every ``interval`` seconds until ``stop``; Redis errors are logged and outlived."""
    while not stop.is_set():
        try:
            await beat(redis, worker_id, interval=interval)
        except Exception as exc:  # redis errors have their own hierarchy
            log.warning("worker beat failed: %r", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
    with contextlib.suppress(Exception):
        await forget(redis, worker_id)
