"""Workers seen (``engine.reconcile.liveness``) and leases of dead workers ended at once
(``ReconcileQueue.expire``), on a real Redis."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from engine.reconcile.liveness import beat, fleet_liveness, forget
from engine.reconcile.queue import ReconcileQueue


async def test_no_worker_ever_seen(redis: Redis) -> None:
    liveness = await fleet_liveness(redis)
    assert (liveness.alive, liveness.last_beat_age, liveness.stale) == (0, None, True)
    assert liveness.describe() == "no worker has been seen"


async def test_a_worker_is_alive_until_it_misses_two_beats(redis: Redis) -> None:
    await beat(redis, "w1", interval=0.2)
    await beat(redis, "w2", interval=10)
    liveness = await fleet_liveness(redis)
    assert (liveness.alive, liveness.stale, liveness.describe()) == (
        2, False, "2 worker(s) alive")
    await asyncio.sleep(0.5)  # w1 missed two beats of 0.2 s; w2 has 20 s
    assert (await fleet_liveness(redis)).alive == 1
    await forget(redis, "w2")  # a clean stop leaves at once
    liveness = await fleet_liveness(redis)
    assert liveness.alive == 0 and liveness.stale
    assert liveness.last_beat_age is not None and 0.4 <= liveness.last_beat_age < 5
    assert liveness.describe().startswith("no worker alive for ")


async def test_expire_hands_a_dead_holders_key_out_at_once(redis: Redis) -> None:
    queue = ReconcileQueue(redis, lease_ms=60_000)
    await queue.add("acme/office")
    dead = await queue.claim("dead-worker")
    assert dead is not None
    await queue.add("acme/office")  # a heartbeat meanwhile: marked dirty, waits for the holder
    assert await queue.claim("w2") is None
    assert await queue.expire("acme/office") is True
    taken = await queue.claim("w2")
    assert taken is not None and taken.key == "acme/office" and taken.token > dead.token
    assert await queue.done(dead) is False  # the dead holder's token is fenced off
    assert await queue.expire("acme/other") is False  # nobody held it
