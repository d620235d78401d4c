"""What every request may need, built once per process in the app's lifespan.

``ApiContext`` is typed field by field: routes reach the engine only through
what is named here (the desired-state source, the queue, the heartbeat
trigger), never through an open-ended dict.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import asyncpg
from redis.asyncio import Redis

from engine.assistant.service import SupportService
from engine.db.appliances import TokenResolver
from engine.db.heartbeats import HeartbeatWriter
from engine.pulls.service import PullRequests
from engine.reconcile.queue import ReconcileQueue
from engine.reconcile.source import DesiredSource
from engine.reconcile.triggers import HeartbeatTrigger
from engine.settings import Settings

HEAD_MAX_AGE = 1.0
"""Seconds a head of main read for a status answer or a heartbeat acknowledgement may be
old; the config and diff routes always read the ref."""


class RecentTokens:
    """Appliance tokens (by HMAC) this process saw live in the last ``ttl`` seconds.

    The heartbeat route's token must be known before its body is parsed, but
    looking it up on every heartbeat would double its database round trips
    (the write already resolves the token, in the same statement). So a token
    is looked up on its own once per ``ttl`` per process and remembered here;
    while remembered, its heartbeats go straight to the write, which still
    refuses it at once if it was revoked in between. A caller with a made-up
    token therefore never gets its body parsed. Bounded: beyond ``max_size``
    tokens the oldest are forgotten (and simply looked up again).
    """

    def __init__(self, *, ttl: float = 60.0, max_size: int = 100_000) -> None:
        self._ttl = ttl
        self._max_size = max_size
        self._seen: dict[bytes, float] = {}

    def __contains__(self, token_hash: bytes) -> bool:
        expires = self._seen.get(token_hash)
        return expires is not None and expires > time.monotonic()

    def add(self, token_hash: bytes) -> None:
        self._seen.pop(token_hash, None)
        self._seen[token_hash] = time.monotonic() + self._ttl
        while len(self._seen) > self._max_size:  # dicts keep insertion order: oldest first
            del self._seen[next(iter(self._seen))]


@dataclass(frozen=True, slots=True)
class Limits:
    """Tunable bounds of the API (defaults are production values)."""

    heartbeat_per_minute: int = 600
    """Heartbeats one appliance may send per minute."""
    unknown_tokens_per_minute_per_address: int = 20
    """Unknown or revoked appliance tokens one client address may present per minute
    before it gets 429 without a lookup."""
    login_per_minute_per_address: int = 30
    """Login attempts from one source address per minute."""
    login_free_failures: int = 3
    """Wrong passwords one (username, client address) may send before delays begin
    (``api.throttle``)."""
    login_max_delay_seconds: int = 300
    """The longest a failing (username, address) waits between attempts."""
    login_failures_per_user_ceiling: int = 100
    """Failures of one username across all addresses in 15 minutes beyond which only
    clients that have not been failing are heard."""
    max_clock_skew_seconds: int = 300
    """How far an appliance's sent_at may be from the server's clock."""
    heartbeat_body_bytes: int = 64 * 1024
    body_bytes: int = 256 * 1024
    """Default request body limit of every other route."""
    jwt_lifetime_seconds: int = 900
    """Access tokens are short: the CLI and console renew them with the refresh token."""
    refresh_lifetime_seconds: int = 14 * 24 * 3600
    """How long a login (its refresh token) lasts without a new password."""
    stream_recheck_seconds: float = 5.0
    """How often an open event stream re-checks that its caller may still read it."""
    stream_keepalive_seconds: float = 15.0
    """Idle time after which a stream sends a keepalive comment."""
    stream_max_seconds: float = 3600.0
    """A stream's lifetime cap; clients reconnect with ``after=`` the last event id."""
    history_per_appliance: int = 32


@dataclass(frozen=True, slots=True)
class ApiContext:
    settings: Settings
    limits: Limits
    pool: asyncpg.Pool
    redis: Redis
    writer: HeartbeatWriter
    tokens: TokenResolver
    source: DesiredSource
    """Which revision applies, desired config, plan previews (``engine.reconcile.source``)."""
    queue: ReconcileQueue
    heartbeat_trigger: HeartbeatTrigger | None
    """Queues a reconcile when a heartbeat differs from desired state; None disables it."""
    pulls: PullRequests | None = None
    """Pull requests: checks, reviews, merges (``engine.pulls``); None where not served."""
    support: SupportService | None = None
    """Support requests: stored and queued here, answered by the worker (``engine.assistant``)."""
    live_tokens: RecentTokens = field(default_factory=RecentTokens)
    """Appliance tokens seen live lately: the heartbeat route skips its separate lookup."""

    async def revision(self, tenant: str) -> str | None:
        """The revision ``tenant``'s appliances should run (a head at most
        ``HEAD_MAX_AGE`` old)."""
        return await self.source.revision(self.pool, tenant, max_age=HEAD_MAX_AGE)
