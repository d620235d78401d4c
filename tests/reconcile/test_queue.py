"""ReconcileQueue against a real Redis: collapse, exclusive claims, leases, backoff, stalls."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from redis.asyncio import Redis

from engine.errors import InvalidInputError
from engine.reconcile.queue import Backoff, FailureRecord, ReconcileQueue

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


async def _server_ms(redis: Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def test_delayed_add_becomes_ready(redis: Redis) -> None:
    # A real wait is the point here (claim polls until the key is due); the margins
    # hold on a machine many times slower: the first claim has 1 s to come before the
    # key is due, the blocking one 10 s to see it.
    queue = _queue(redis)
    before = await _server_ms(redis)
    await queue.add(KEY, delay_ms=1_000)
    after = await _server_ms(redis)
    due = await redis.zscore(queue.prefix + ":ready", KEY)
    assert before + 1_000 <= due <= after + 1_000
    assert await queue.claim("w1") is None
    claim = await queue.claim("w1", block_ms=10_000)
    assert claim is not None and claim.key == KEY
    assert await _server_ms(redis) >= before + 1_000


@pytest.mark.parametrize("bad", ["acme", "acme/Office", "a/b/c", "acme/office:1", "../x/y", ""],
                         ids=["no-slash", "upper-case", "three-parts", "colon", "dots", "empty"])
async def test_keys_are_tenant_slash_appliance(redis: Redis, bad: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        await _queue(redis).add(bad)
    assert str(caught.value) == f"queue key {bad!r} is not 'tenant/appliance'"


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

    produced = asyncio.Event()

    async def worker(name: str) -> None:
        # Stop only once the producer is done and nothing is ready: no idle timeout that
        # a slow machine could outlast (a key still being processed by another worker
        # comes back to that worker, which loops once more after ``done``).
        while True:
            claim = await queue.claim(name, block_ms=20)
            if claim is None:
                if produced.is_set():
                    return
                continue
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
            await asyncio.sleep(0)
        produced.set()

    await asyncio.gather(producer(), *(worker(f"w{i}") for i in range(8)))
    assert overlaps == []
    assert set(processed) == set(keys)
    assert all(count >= 1 for count in processed.values())
    assert await queue.depth() == (0, 0)


async def _lease_ends(queue: ReconcileQueue, redis: Redis) -> float:
    return await redis.zscore(queue.prefix + ":processing", KEY)


async def test_a_claim_holds_a_lease_of_lease_ms(redis: Redis) -> None:
    queue = _queue(redis, lease_ms=45_000)
    await queue.add(KEY)
    before = await _server_ms(redis)
    claim = await queue.claim("w1")
    after = await _server_ms(redis)
    assert (claim.key, claim.token, claim.worker_id) == (KEY, 1, "w1")
    assert before + 45_000 <= await _lease_ends(queue, redis) <= after + 45_000
    assert await redis.hget(queue.prefix + ":owners", KEY) == b"1"


async def test_expired_lease_is_requeued(redis: Redis) -> None:
    # The lease is made to have ended (its end moved to the past on the server) instead
    # of waited out, so no margin is involved.
    queue = _queue(redis, lease_ms=60_000)
    await queue.add(KEY)
    dead = await queue.claim("dead-worker")
    assert await queue.claim("w2") is None
    await redis.zadd(queue.prefix + ":processing", {KEY: 1}, xx=True)
    rescued = await queue.claim("w2")
    assert rescued is not None and rescued.key == KEY and rescued.token > dead.token
    # The dead worker's late calls are refused and change nothing.
    assert await queue.done(dead) is False
    assert await queue.extend(dead) is False
    assert await queue.retry(dead, error="late") is None
    assert await queue.depth() == (0, 1)
    assert await queue.done(rescued)


async def test_extend_keeps_the_lease(redis: Redis) -> None:
    queue = _queue(redis, lease_ms=60_000)
    await queue.add(KEY)
    claim = await queue.claim("w1")
    # The lease is about to end (1 ms after the epoch, on the server's clock) ...
    await redis.zadd(queue.prefix + ":processing", {KEY: 1}, xx=True)
    before = await _server_ms(redis)
    assert await queue.extend(claim)
    after = await _server_ms(redis)
    # ... and extend moves its end to lease_ms from now, so no one can take the key.
    assert before + 60_000 <= await _lease_ends(queue, redis) <= after + 60_000
    assert await queue.claim("w2") is None
    assert await queue.done(claim)
    assert await queue.depth() == (0, 0)


class _FixedJitter(random.Random):
    """Jitter draws in a fixed order, so each delay is a known number."""

    def __init__(self, *draws: float) -> None:
        super().__init__(0)
        self._draws = list(draws)

    def random(self) -> float:
        return self._draws.pop(0)


async def test_backoff_grows_with_jitter_and_resets_on_success(redis: Redis) -> None:
    # Nominal delays 1, 2, 4, 8, 8 s (base 1 s doubling, cap 8 s); equal jitter keeps
    # half and adds draw * half: 0 -> 500, 0.5 -> 1500, 1 -> 4000, 0.25 -> 5000, 1 -> 8000.
    queue = ReconcileQueue(redis, backoff=Backoff(base_ms=1_000, cap_ms=8_000, max_failures=99),
                           rng=_FixedJitter(0.0, 0.5, 1.0, 0.25, 1.0, 0.5))
    expected = [500, 1_500, 4_000, 5_000, 8_000]
    await queue.add(KEY)
    for attempt in range(1, 6):
        claim = await queue.claim("w1")
        assert claim is not None, attempt
        before = await _server_ms(redis)
        record = await queue.retry(claim, error="ssh timeout", revision="r1",
                                   plan_hash=f"h{attempt}")
        after = await _server_ms(redis)
        delay = expected[attempt - 1]
        assert before + delay <= record.retry_at_ms <= after + delay, (attempt, record)
        assert (record.attempts, record.count, record.stalled) == (attempt, 1, False)
        assert await redis.zscore(queue.prefix + ":ready", KEY) == record.retry_at_ms
        # A trigger during backoff does not make the key ready early.
        await queue.add(KEY)
        assert await queue.claim("w1") is None
        await redis.zadd(queue.prefix + ":ready", {KEY: 0})  # skip the wait
        await redis.hset(queue.state_key(KEY), "retry_at", 0)
    # Success resets the backoff.
    claim = await queue.claim("w1")
    assert claim.key == KEY
    assert await queue.done(claim)
    assert await queue.failures(KEY) is None
    await queue.add(KEY)
    claim = await queue.claim("w1")
    before = await _server_ms(redis)
    record = await queue.retry(claim, error="again")
    after = await _server_ms(redis)
    assert record.attempts == 1
    assert before + 750 <= record.retry_at_ms <= after + 750  # nominal 1 s, draw 0.5


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
        claim = await queue.claim("w1", block_ms=5_000)
        assert claim is not None, attempt
        record = await queue.retry(claim, error="task failed: useradd", revision="r1",
                                   plan_hash="h1")
        assert record.count == attempt
    assert record.stalled
    # The queue does not retry it: nothing is queued or held, so no claim can ever see it.
    assert record.retry_at_ms is None
    assert await queue.depth() == (0, 0)
    assert await queue.claim("w1") is None
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
    assert (await queue.claim("w1", block_ms=5_000)).key == KEY


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


async def test_a_failure_record_reads_back_as_it_was_written(redis: Redis) -> None:
    queue = ReconcileQueue(redis, backoff=Backoff(base_ms=2_000, cap_ms=60_000, max_failures=3),
                           rng=_FixedJitter(0.5, 0.0))
    await queue.add(KEY)
    before = await _server_ms(redis)
    # No revision or plan yet (the worker failed before planning), and a long error.
    first = await queue.retry(await queue.claim("w1"), error="E" * 2_500)
    after = await _server_ms(redis)
    assert first.error == "E" * 2_000
    assert before + 1_500 <= first.retry_at_ms <= after + 1_500
    assert first == FailureRecord(attempts=1, count=1, revision=None, plan_hash=None,
                                  error="E" * 2_000, stalled=False, retry_at_ms=first.retry_at_ms)
    assert await queue.failures(KEY) == first
    assert await redis.hget(queue.state_key(KEY), "fingerprint") == b":"
    await redis.zadd(queue.prefix + ":ready", {KEY: 0})  # skip the wait
    second = await queue.retry(await queue.claim("w1"), error="boom", revision="c0ffee",
                               plan_hash="9f8e")
    assert (second.attempts, second.count, second.revision, second.plan_hash, second.error,
            second.stalled) == (2, 1, "c0ffee", "9f8e", "boom", False)
    assert await queue.failures(KEY) == second
    assert await queue.stalled(KEY, revision="c0ffee", plan_hash="9f8e") is False


async def test_a_client_that_decodes_responses_reads_the_same(redis: Redis) -> None:
    from tests.reconcile.conftest import REDIS_URL

    text = Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        queue = ReconcileQueue(text, backoff=Backoff(base_ms=1, cap_ms=1, max_failures=1),
                               rng=_FixedJitter(0.0))
        await queue.add(KEY)
        claim = await queue.claim("w1")
        assert (claim.key, claim.token) == (KEY, 1)
        record = await queue.retry(claim, error="stalled at once", revision="r9", plan_hash="h9")
        assert (record.attempts, record.count, record.stalled, record.retry_at_ms) == (
            1, 1, True, None)
        assert await queue.failures(KEY) == FailureRecord(
            attempts=1, count=1, revision="r9", plan_hash="h9", error="stalled at once",
            stalled=True, retry_at_ms=None)
        assert await queue.stalled(KEY, revision="r9", plan_hash="h9") is True
    finally:
        await text.aclose()


@pytest.mark.parametrize(("delay_ms", "expected"), [(-5_000, 0), (0, 0), (2_500, 2_500)],
                         ids=["negative-is-now", "zero", "positive"])
async def test_add_schedules_at_server_time_plus_delay(redis: Redis, delay_ms, expected) -> None:
    queue = _queue(redis)
    before = await _server_ms(redis)
    assert await queue.add(KEY, delay_ms=delay_ms) is True
    after = await _server_ms(redis)
    assert before + expected <= await redis.zscore(queue.prefix + ":ready", KEY) <= after + expected


@pytest.mark.parametrize("shard", ["", "a" * 33, "Reconcile", "re:concile"],
                         ids=["empty", "33-chars", "upper-case", "colon"])
async def test_a_shard_name_is_short_lower_case_text(redis: Redis, shard: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        ReconcileQueue(redis, shard=shard)
    assert str(caught.value) == f"queue shard {shard!r} must be 1-32 of [a-z0-9-]"


async def test_the_defaults_a_worker_relies_on(redis: Redis) -> None:
    # A worker extends its lease well within a minute; backoff starts at 1 s, stops
    # growing at 5 min, and the same failure three times stalls the key.
    queue = ReconcileQueue(redis)
    assert (queue.prefix, queue.lease_ms) == ("hearth:queue:reconcile", 60_000)
    assert queue.backoff == Backoff(base_ms=1_000, cap_ms=300_000, max_failures=3)


async def test_shards_have_their_own_keys(redis: Redis) -> None:
    pool = ReconcileQueue(redis, shard="a" * 32)
    assert pool.prefix == "hearth:queue:" + "a" * 32
    assert pool.state_key(KEY) == f"hearth:queue:{'a' * 32}:state:acme:office-1"
    await pool.add(KEY)
    assert await _queue(redis).claim("w1") is None
    assert (await pool.claim("w1")).key == KEY


async def test_done_without_an_outcome_keeps_the_failure_record(redis: Redis) -> None:
    queue = _queue(redis, backoff=Backoff(base_ms=1, cap_ms=1, max_failures=5))
    await queue.add(KEY)
    await queue.retry(await queue.claim("w1"), error="flaky", revision="r1", plan_hash="h1")
    await redis.zadd(queue.prefix + ":ready", {KEY: 0})
    assert await queue.done(await queue.claim("w1"), reset_failures=False)
    record = await queue.failures(KEY)
    assert (record.attempts, record.count, record.error) == (1, 1, "flaky")


async def test_a_short_block_still_waits_for_a_key_due_within_it(redis: Redis) -> None:
    # Due in 300 ms, the block lasts 950 ms: 650 ms to spare for a slow machine.
    queue = _queue(redis)
    await queue.add(KEY, delay_ms=300)
    claim = await queue.claim("w1", block_ms=950)
    assert claim is not None and claim.key == KEY


class _CountingRedis(Redis):
    """A real Redis client that counts the queue's script calls (its polls)."""

    scripts = 0

    async def evalsha(self, *args, **kwargs):
        self.scripts += 1
        return await super().evalsha(*args, **kwargs)


async def test_a_blocked_claim_polls_every_50_ms_and_sees_a_new_key_within_a_poll(
        redis: Redis) -> None:
    from tests.reconcile.conftest import REDIS_URL

    counting = _CountingRedis.from_url(REDIS_URL)
    try:
        queue = ReconcileQueue(counting)
        assert await queue.claim("w1") is None
        assert counting.scripts == 1  # no block: one look, no wait
        counting.scripts = 0
        assert await queue.claim("w1", block_ms=500) is None
        # 500 ms at one poll per 50 ms is at most 11 looks (fewer on a slow machine)
        assert 2 <= counting.scripts <= 11
        async def add_later() -> None:
            await asyncio.sleep(0.2)
            await _queue(redis).add(KEY)

        loop = asyncio.get_running_loop()
        started = loop.time()
        adder = asyncio.create_task(add_later())
        claim = await queue.claim("w1", block_ms=20_000)
        await adder
        # Seen at the next poll after the add (about 0.25 s), not at the end of the block.
        assert claim is not None and claim.key == KEY
        assert loop.time() - started < 10
    finally:
        await counting.aclose()


async def test_a_partial_failure_record_reads_with_defaults(redis: Redis) -> None:
    # The retry script always writes every field; this pins how ``failures`` reads a
    # record that lacks some (one written by another version of Hearth, say).
    queue = _queue(redis)
    await redis.hset(queue.state_key(KEY), "retry_at", 5)
    assert await queue.failures(KEY) == FailureRecord(
        attempts=0, count=0, revision=None, plan_hash=None, error="", stalled=False,
        retry_at_ms=5)
    await redis.delete(queue.state_key(KEY))
    await redis.hset(queue.state_key(KEY), "attempts", 2)
    assert await queue.failures(KEY) == FailureRecord(
        attempts=2, count=0, revision=None, plan_hash=None, error="", stalled=False,
        retry_at_ms=None)
