"""What every request may need, built once per process in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
from redis.asyncio import Redis

from api.desired import DesiredRevisions
from engine.db.appliances import TokenResolver
from engine.db.heartbeats import HeartbeatWriter
from engine.settings import Settings


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
    heartbeat_interval_seconds: int = 30


@dataclass(slots=True)
class ApiContext:
    settings: Settings
    limits: Limits
    pool: asyncpg.Pool
    redis: Redis
    writer: HeartbeatWriter
    tokens: TokenResolver
    desired: DesiredRevisions
    extra: dict[str, object] = field(default_factory=dict)
