"""What every request may need, built once per process in the app's lifespan.

``ApiContext`` is typed field by field: routes reach the engine only through
what is named here (the desired-state source, the queue, the heartbeat
trigger), never through an open-ended dict.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Limits:
    """Tunable bounds of the API (defaults are production values)."""

    heartbeat_per_minute: int = 600
    """Heartbeats one appliance may send per minute."""
    login_per_minute_per_address: int = 30
    """Login attempts from one source address per minute."""
    login_failures_per_user: int = 5
    """Failed logins of one username before it is locked for ``login_lockout_seconds``."""
    login_lockout_seconds: int = 900
    max_clock_skew_seconds: int = 300
    """How far an appliance's sent_at may be from the server's clock."""
    heartbeat_body_bytes: int = 64 * 1024
    body_bytes: int = 256 * 1024
    """Default request body limit of every other route."""
    jwt_lifetime_seconds: int = 900
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

    async def revision(self, tenant: str) -> str | None:
        """The revision ``tenant``'s appliances should run (a head at most
        ``HEAD_MAX_AGE`` old)."""
        return await self.source.revision(self.pool, tenant, max_age=HEAD_MAX_AGE)
