"""A real Redis (the reconcile tests' own database), flushed before and after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.services import RECONCILE_DB, redis_url

REDIS_URL = redis_url(RECONCILE_DB)


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()
