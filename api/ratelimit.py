"""Rate limits on Redis through Litestar's ``RateLimitConfig``.

Litestar's stock ``RateLimitMiddleware`` reads and rewrites a JSON history
per key under one process-wide lock, two Redis round trips with every
request of the process queued behind them. ``FixedWindowRateLimitMiddleware``
keeps the configuration (limit, unit, store, identifier, headers) and replaces
the bookkeeping with one Redis command per request on the configured
``RedisStore`` (``EVALSHA`` of a two-line script: ``INCR``, and ``PEXPIRE``
when the key is new): atomic across processes and API pods, no lock.
The increments of concurrent requests of one process go to Redis together,
one pipeline per batch (``MicroBatcher``): every request is still counted in
Redis before it is let through, so the limit is exact across processes; only
the round trips and the per-call client overhead are shared. Over the limit
it answers 429 with ``Retry-After`` (seconds to the next window) and the
RateLimit-* headers.

``limit(name, per_minute, identify)`` builds a config whose keys are
namespaced by ``name``, so several limits (heartbeat, login) never share a
counter.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.exceptions import TooManyRequestsException
from litestar.middleware.rate_limit import (
    DURATION_VALUES,
    RateLimitConfig,
    RateLimitMiddleware,
    get_remote_address,
)
from litestar.stores.redis import RedisStore
from litestar.types import Receive, Scope, Send
from redis.exceptions import NoScriptError

from engine.db.batch import MicroBatcher

STORE_NAME = "rate_limit"


_INCR_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count
"""
_INCR_SHA = hashlib.sha1(_INCR_SCRIPT.encode()).hexdigest()  # noqa: S324 (Redis's script id)


class WindowCounter:
    """Count many keys in one pipeline, one ``EVALSHA`` each: the count of each key after it.

    The script sets the expiry only when ``INCR`` created the key, in the same
    atomic step, so a counter never outlives its window.
    """

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self._batcher: MicroBatcher[tuple[str, int], int] = MicroBatcher(
            self._flush, max_size=1000, linger=0.0, max_in_flight=2)

    async def _send(self, items: list[tuple[str, int]]) -> list[Any]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, ttl in items:
                pipe.evalsha(_INCR_SHA, 1, key, ttl * 1000)
            return await pipe.execute()

    async def _flush(self, items: list[tuple[str, int]]) -> list[int]:
        try:
            results = await self._send(items)
        except NoScriptError:  # a fresh or flushed Redis: nothing was counted, so send again
            await self._redis.script_load(_INCR_SCRIPT)
            results = await self._send(items)
        return [int(count) for count in results]

    async def incr(self, key: str, *, ttl: int) -> int:
        return await self._batcher.submit((key, ttl))


class FixedWindowRateLimitMiddleware(RateLimitMiddleware):
    _counter: tuple[asyncio.AbstractEventLoop, Any, WindowCounter] | None = None

    def _counter_for(self, redis: Any) -> WindowCounter:
        loop = asyncio.get_running_loop()
        if self._counter is None or self._counter[0] is not loop or self._counter[1] is not redis:
            self._counter = (loop, redis, WindowCounter(redis))
        return self._counter[2]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = scope["litestar_app"]
        request: Request[Any, Any, Any] = app.request_class(scope)
        if await self.should_check_request(request=request):
            store = self.config.get_store_from_app(app)
            if not isinstance(store, RedisStore):
                raise TypeError("rate limits need a RedisStore")
            window = DURATION_VALUES[self.unit]
            now = int(time.time())
            start = now - now % window
            # RedisStore exposes no atomic increment; use its client and key namespace.
            key = store._make_key(f"{self.cache_key_from_request(request)}:{start}")
            count = await self._counter_for(store._redis).incr(key, ttl=window + 1)
            reset = start + window - now
            if count > self.max_requests:
                raise TooManyRequestsException(
                    detail="rate limit exceeded",
                    headers={"Retry-After": str(max(reset, 1)),
                             self.config.rate_limit_limit_header_key: str(self.max_requests),
                             self.config.rate_limit_remaining_header_key: "0",
                             self.config.rate_limit_reset_header_key: str(reset)})
        await self.app(scope, receive, send)


def by_address(request: Request[Any, Any, Any]) -> str:
    return get_remote_address(request)


def by_bearer(request: Request[Any, Any, Any]) -> str:
    """A digest of the bearer credential: one counter per appliance token, nothing reversible."""
    header = request.headers.get("authorization", "")
    return hashlib.blake2b(header.encode(), digest_size=12).hexdigest() if header else \
        "anon:" + get_remote_address(request)


def limit(name: str, per_minute: int, identify: Callable[[Request[Any, Any, Any]], str]
          ) -> RateLimitConfig:
    return RateLimitConfig(
        rate_limit=("minute", per_minute),
        identifier_for_request=lambda request: f"{name}:{identify(request)}",
        middleware_class=FixedWindowRateLimitMiddleware,
        store=STORE_NAME,
        set_rate_limit_headers=False,
    )
