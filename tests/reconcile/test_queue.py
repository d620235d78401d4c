"""ReconcileQueue against a real Redis: collapse, exclusive claims, leases, backoff, stalls."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from redis.asyncio import Redis

from engine.errors import InvalidInputError
from engine.reconcile.queue import Backoff, ReconcileQueue

KEY = "acme/office-1"


def _queue(redis: Redis, **kwargs: object) -> ReconcileQueue:
    return ReconcileQueue(redis, rng=random.Random(7), **kwargs)  # type: ignore[arg-type]


async def test_repeated_adds_collapse(redis: Redis) -> None:
    queue = _queue(redis)
    for _ in range(5):
        assert await queue.add(KEY)
    await queue.add("acme/office-2")
    assert await queue.depth() == (2, 0)
    first = await queue.claim("w1")
    second = await queue.claim("w1")
    assert {first.key, second.key} == {KEY, "acme/office-2"}
    assert await queue.claim("w1") is None


async def test_add_keeps_the_earliest_time(redis: Redis) -> None:
    queue = _queue(redis)
    await queue.add(KEY, delay_ms=60_000)
    assert await queue.claim("w1") is None
    await queue.add(KEY)
    assert (await queue.claim("w1")).key == KEY


async def test_delayed_add_becomes_ready(redis: Redis) -> None:
    queue = _queue(redis)
    await queue.add(KEY, delay_ms=100)
    assert await queue.claim("w1") is None
    claim = await queue.claim("w1", block_ms=1_000)
    assert claim is not None and claim.key == KEY


@pytest.mark.parametrize("bad", ["acme", "acme/Office", "a/b/c", "acme/office:1", "../x/y", ""],
                         ids=["no-slash", "upper-case", "three-parts", "colon", "dots", "empty"])
async def test_keys_are_tenant_slash_appliance(redis: Redis, bad: str) -> None:
    with pytest.raises(InvalidInputError):
        await _queue(redis).add(bad)


async def test_state_keys_name_the_tenant(redis: Redis) -> None:
    queue = _queue(redis)
    assert queue.state_key("acme/office-1") == "hearth:queue:reconcile:state:acme:office-1"
    assert queue.state_key("beta/office-1") != queue.state_key("acme/office-1")


async def test_add_while_processing_requeues_after_done(redis: Redis) -> None:
    queue = _queue(redis)
    await queue.add(KEY)
    claim = await queue.claim("w1")
    assert await queue.add(KEY) is False  # dirty, not handed to anyone else
    assert await queue.claim("w2") is None
    assert await queue.done(claim)
    again = await queue.claim("w2")
    assert again is not None and again.key == KEY and again.token > claim.token


async def test_done_without_adds_leaves_nothing(redis: Redis) -> None:
    queue = _queue(redis)
    await queue.add(KEY)
    assert await queue.done(await queue.claim("w1"))
    assert await queue.depth() == (0, 0)


async def test_no_double_claim_under_concurrency(redis: Redis) -> None:
    queue = _queue(redis)
    keys = [f"tenant-{t}/box-{b}" for t in range(4) for b in range(10)]
    active: set[str] = set()
    overlaps: list[str] = []
    processed: Counter[str] = Counter()

    async def worker(name: str) -> None:
        while True:
            claim = await queue.claim(name, block_ms=200)
            if claim is None:
                return
            if claim.key in active:
                overlaps.append(claim.key)
            active.add(claim.key)
            await asyncio.sleep(random.random() / 200)
            if processed[claim.key] < 2:
                await queue.add(claim.key)  # a trigger fires while the key is processed
            processed[claim.key] += 1
            active.discard(claim.key)
            assert await queue.done(claim)

    async def producer() -> None:
        for _ in range(3):
            for key in keys:
                await queue.add(key)
            await asyncio.sleep(0.01)

    await asyncio.gather(producer(), *(worker(f"w{i}") for i in range(8)))
    assert overlaps == []
    assert set(processed) == set(keys)
    assert await queue.depth() == (0, 0)


async def test_expired_lease_is_requeued(redis: Redis) -> None:
    queue = _queue(redis, lease_ms=150)
    await queue.add(KEY)
    dead = await queue.claim("dead-worker")
    assert await queue.claim("w2") is None
    rescued = await queue.claim("w2", block_ms=1_000)
    assert rescued is not None and rescued.key == KEY and rescued.token > dead.token
    # The dead worker's late calls are refused and change nothing.
    assert await queue.done(dead) is False
    assert await queue.extend(dead) is False
    assert await queue.retry(dead, error="late") is None
    assert await queue.depth() == (0, 1)
    assert await queue.done(rescued)


async def test_extend_keeps_the_lease(redis: Redis) -> None:
    queue = _queue(redis, lease_ms=150)
    await queue.add(KEY)
    claim = await queue.claim("w1")
    for _ in range(3):
        await asyncio.sleep(0.08)
        assert await queue.extend(claim)
    assert await queue.claim("w2") is None
    assert await queue.done(claim)


async def test_backoff_grows_with_jitter_and_resets_on_success(redis: Redis) -> None:
    queue = _queue(redis, backoff=Backoff(base_ms=1_000, cap_ms=8_000, max_failures=99))
    await queue.add(KEY)
    delays = []
    for attempt in range(1, 6):
        claim = await queue.claim("w1")
        assert claim is not None, attempt
        record = await queue.retry(claim, error="ssh timeout", revision="r1",
                                   plan_hash=f"h{attempt}")
        seconds, micros = await redis.time()
        delay = record.retry_at_ms - (int(seconds) * 1000 + int(micros) // 1000)
        nominal = min(8_000, 1_000 * 2 ** (attempt - 1))
        assert nominal / 2 - 50 <= delay <= nominal, (attempt, delay)
        assert record.attempts == attempt and not record.stalled
        delays.append(delay)
        # A trigger during backoff does not make the key ready early.
        await queue.add(KEY)
        assert await queue.claim("w1") is None
        await redis.zadd(queue.prefix + ":ready", {KEY: 0})  # skip the wait
        await redis.hset(queue.state_key(KEY), "retry_at", 0)
    assert delays[3] > delays[0]
    # Success resets the backoff.
    claim = await queue.claim("w1")
    assert claim.key == KEY
    assert await queue.done(claim)
    assert await queue.failures(KEY) is None
    await queue.add(KEY)
    claim = await queue.claim("w1")
    record = await queue.retry(claim, error="again")
    assert record.attempts == 1


async def test_jitter_spreads_keys_failing_together(redis: Redis) -> None:
    queue = _queue(redis)
    keys = [f"acme/office-{i}" for i in range(5)]
    for key in keys:
        await queue.add(key)
    retry_times = set()
    for _ in keys:
        record = await queue.retry(await queue.claim("w1"), error="network down")
        assert record.attempts == 1
        retry_times.add(record.retry_at_ms)
    assert len(retry_times) > 1


async def test_same_failure_stalls_until_new_revision_or_reset(redis: Redis) -> None:
    queue = _queue(redis, backoff=Backoff(base_ms=1, cap_ms=1, max_failures=3))
    await queue.add(KEY)
    for attempt in range(1, 4):
        claim = await queue.claim("w1", block_ms=500)
        assert claim is not None, attempt
        record = await queue.retry(claim, error="task failed: useradd", revision="r1",
                                   plan_hash="h1")
        assert record.count == attempt
    assert record.stalled
    assert await queue.claim("w1", block_ms=50) is None  # the queue does not retry it
    assert await queue.stalled(KEY, revision="r1", plan_hash="h1")
    failure = await queue.failures(KEY)
    assert (failure.count, failure.error, failure.revision) == (3, "task failed: useradd", "r1")
    # A new revision (a trigger adds the key) is not stalled: the worker runs it.
    assert not await queue.stalled(KEY, revision="r2", plan_hash="h1")
    await queue.add(KEY)
    claim = await queue.claim("w1")
    record = await queue.retry(claim, error="task failed", revision="r2", plan_hash="h1")
    assert (record.count, record.stalled) == (1, False)
    # A manual sync resets everything.
    await queue.reset(KEY)
    assert await queue.failures(KEY) is None
    assert (await queue.claim("w1", block_ms=500)).key == KEY


async def test_queue_lost_loses_only_hints(redis: Redis) -> None:
    queue = _queue(redis)
    await queue.add(KEY)
    await redis.flushdb()
    assert await queue.claim("w1") is None
    await queue.add(KEY)  # the resync re-adds it
    assert (await queue.claim("w1")).key == KEY


async def test_a_later_delayed_add_does_not_postpone_an_earlier_one(redis: Redis) -> None:
    queue = _queue(redis)
    assert await queue.add(KEY)
    await queue.add(KEY, delay_ms=60_000)
    claim = await queue.claim("w1")
    assert claim is not None and claim.key == KEY
    assert await queue.depth() == (0, 1)


async def test_a_delayed_re_add_mid_processing_is_kept_for_after_done(redis: Redis) -> None:
    queue = _queue(redis)
    await queue.add(KEY)
    claim = await queue.claim("w1")
    assert await queue.add(KEY, delay_ms=60_000) is False
    assert await queue.done(claim)
    assert await queue.depth() == (1, 0)  # requeued by done, not lost
    assert await queue.claim("w2") is None  # and not ready yet: its delay holds
    await queue.add(KEY)  # an earlier time wins
    again = await queue.claim("w2")
    assert again is not None and again.key == KEY


async def test_mid_processing_the_earlier_of_two_re_adds_wins(redis: Redis) -> None:
    queue = _queue(redis)
    await queue.add(KEY)
    claim = await queue.claim("w1")
    assert await queue.add(KEY) is False
    assert await queue.add(KEY, delay_ms=60_000) is False
    assert await queue.done(claim)
    again = await queue.claim("w2")
    assert again is not None and again.key == KEY
