"""Login throttling without lock-out: growing delays per (username, client address).

The old rule (five wrong guesses lock a username for 15 minutes) let anyone
lock the admin out. Now:

- per (username, client address): ``Limits.login_free_failures`` wrong
  passwords cost nothing; each one after that makes the pair wait before its
  next attempt, 1 s doubling up to ``Limits.login_max_delay_seconds``. The
  pair's count is forgotten an hour after its last failure and at once on a
  success.
- per username, across addresses: a ceiling far higher
  (``Limits.login_failures_per_user_ceiling`` failures in 15 minutes). Above
  it, addresses that have themselves failed for this username are refused;
  a client that has not been failing still gets its password checked, so the
  right password from it always works. (An attacker spreading guesses over many
  addresses gets ``login_free_failures`` per address before the delays bite.)

The client address is ``scope["client"]``, which ``api.edge`` takes from
``X-Forwarded-For`` only for configured proxies. State lives in Redis, so it
holds across API processes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis.asyncio import Redis

from api.context import Limits

_PAIR_MEMORY_SECONDS = 3600
_USER_WINDOW_SECONDS = 900


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: int = 0
    reason: str = ""


def _keys(username: str, address: str) -> tuple[str, str]:
    user = username.lower()
    window = int(time.time()) // _USER_WINDOW_SECONDS
    return f"hearth:login:pair:{user}:{address}", f"hearth:login:user:{user}:{window}"


def delay_after(failures: int, limits: Limits) -> int:
    """Seconds a (username, address) pair waits after its ``failures``-th failure."""
    over = failures - limits.login_free_failures
    return 0 if over <= 0 else min(2 ** (over - 1), limits.login_max_delay_seconds)


async def check(redis: Redis, limits: Limits, *, username: str, address: str) -> Verdict:
    """May this client try a password for this username now?"""
    pair, user = _keys(username, address)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hmget(pair, "failures", "next_at")
        pipe.get(user)
        (failures, next_at), user_failures = await pipe.execute()
    failures = int(failures or 0)
    wait = float(next_at or 0) - time.time()
    if wait > 0:
        return Verdict(False, retry_after=max(1, int(wait + 0.999)), reason="throttled")
    if failures > 0 and int(user_failures or 0) >= limits.login_failures_per_user_ceiling:
        return Verdict(False, retry_after=_USER_WINDOW_SECONDS - int(time.time())
                       % _USER_WINDOW_SECONDS, reason="user-ceiling")
    return Verdict(True)


async def failed(redis: Redis, limits: Limits, *, username: str, address: str) -> None:
    pair, user = _keys(username, address)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hincrby(pair, "failures", 1)
        pipe.expire(pair, _PAIR_MEMORY_SECONDS)
        pipe.incr(user)
        pipe.expire(user, _USER_WINDOW_SECONDS + 1)
        failures, *_ = await pipe.execute()
    delay = delay_after(int(failures), limits)
    if delay:
        await redis.hset(pair, "next_at", str(time.time() + delay))


async def succeeded(redis: Redis, *, username: str, address: str) -> None:
    await redis.delete(_keys(username, address)[0])
