"""Heartbeats: stored durably, replay 409, clock skew 400, size 413, rate limit 429."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from api.context import Limits
from tests.api.conftest import APPLIANCE


def beat(sequence: int, *, sent_at: datetime | None = None, **extra) -> dict:
    return {"sequence": sequence, "sent_at": (sent_at or datetime.now(UTC)).isoformat(),
            "agent_version": "1.2.3",
            "services": [{"name": "named", "status": "running"}],
            "facts": {"kernel": "6.1"}, **extra}


async def _counts(world) -> tuple[int, int]:
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        return (await conn.fetchval("SELECT count(*) FROM observed_latest"),
                await conn.fetchval("SELECT count(*) FROM observed_history"))
    finally:
        await conn.close()


async def test_heartbeat_is_stored_and_acknowledged_with_the_desired_revision(client, world):
    response = await client.post("/api/v1/heartbeat", json=beat(1), headers=world.auth("appliance"))
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted_sequence": 1, "desired_revision": world.heads["acme"],
                               "next_interval_seconds": 30}
    assert await _counts(world) == (1, 1)
    view = await client.get(f"/api/v1/appliances/{world.appliance_ids['acme/front-office']}",
                            headers=world.auth("operator"))
    assert view.json()["last_sequence"] == 1
    assert view.json()["status"]["health"] == "Healthy"
    assert view.json()["status"]["sync"] == "OutOfSync"  # no applied revision reported yet


async def test_the_appliance_is_the_tokens_not_the_bodys(client, world) -> None:
    body = beat(1, appliance_id=world.appliance_ids["globex/front-office"])
    response = await client.post("/api/v1/heartbeat", json=body, headers=world.auth("appliance"))
    assert response.status_code == 400  # unknown field: the body cannot name an appliance
    assert await _counts(world) == (0, 0)


async def test_replayed_or_older_sequence_is_409_and_stores_nothing(client, world) -> None:
    headers = world.auth("appliance")
    assert (await client.post("/api/v1/heartbeat", json=beat(5), headers=headers)).status_code == 200
    for sequence in (5, 4):
        r = await client.post("/api/v1/heartbeat", json=beat(sequence), headers=headers)
        assert r.status_code == 409
        assert r.headers["content-type"].startswith("application/problem+json")
    assert await _counts(world) == (1, 1)
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        reasons = await conn.fetch(
            "SELECT details->>'reason' AS r FROM audit_events WHERE action = 'heartbeat.reject'")
    finally:
        await conn.close()
    assert [r["r"] for r in reasons] == ["stale_sequence", "stale_sequence"]


async def test_concurrent_duplicates_store_each_sequence_once(client, world) -> None:
    headers = world.auth("appliance")
    responses = await asyncio.gather(*(client.post("/api/v1/heartbeat", json=beat(s),
                                                   headers=headers)
                                       for s in (1, 2, 3) for _ in range(3)))
    codes = sorted(r.status_code for r in responses)
    assert set(codes) <= {200, 409} and codes.count(200) <= 3
    assert (await _counts(world))[1] == codes.count(200)


@pytest.mark.parametrize("offset", [timedelta(minutes=6), -timedelta(minutes=6)],
                         ids=["ahead", "behind"])
async def test_clock_skew_beyond_the_bound_is_400(client, world, offset) -> None:
    body = beat(1, sent_at=datetime.now(UTC) + offset)
    response = await client.post("/api/v1/heartbeat", json=body, headers=world.auth("appliance"))
    assert response.status_code == 400
    assert "clock" in response.json()["detail"]
    assert await _counts(world) == (0, 0)


async def test_body_over_64_kib_is_413(client, world) -> None:
    body = beat(1, facts={f"k{i}": "x" * 500 for i in range(60)})
    big = (await asyncio.to_thread(lambda: __import__("json").dumps(body))).encode()
    big = big[:-1] + b', "pad": "' + b"y" * (70 * 1024 - len(big)) + b'"}'
    assert len(big) > 70 * 1024 - 100
    response = await client.post("/api/v1/heartbeat", content=big,
                                 headers={**world.auth("appliance"),
                                          "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await _counts(world) == (0, 0)


async def test_revoked_token_stops_at_once(client, world) -> None:
    headers = world.auth("appliance")
    assert (await client.post("/api/v1/heartbeat", json=beat(1), headers=headers)).status_code == 200
    appliance = world.appliance_ids["acme/front-office"]
    revoke = await client.delete(f"/api/v1/appliances/{appliance}/token",
                                 headers=world.auth("operator"))
    assert revoke.status_code == 204
    assert (await client.post("/api/v1/heartbeat", json=beat(2), headers=headers)).status_code == 401
    config = await client.get(f"/api/v1/appliance/{appliance}/config", headers=headers)
    assert config.status_code == 401


async def test_rotated_token_replaces_the_old_one(client, world) -> None:
    appliance = world.appliance_ids["acme/front-office"]
    rotated = await client.post(f"/api/v1/appliances/{appliance}/token",
                                headers=world.auth("operator"))
    assert rotated.status_code == 200
    new = rotated.json()["token"]
    assert new.startswith("hth_app_") and new != world.appliance_tokens["acme/front-office"]
    old = await client.post("/api/v1/heartbeat", json=beat(1), headers=world.auth("appliance"))
    assert old.status_code == 401
    ok = await client.post("/api/v1/heartbeat", json=beat(1),
                           headers={"Authorization": f"Bearer {new}"})
    assert ok.status_code == 200


class TestRateLimit:
    @pytest.fixture
    def limits(self) -> Limits:
        return Limits(heartbeat_per_minute=3)

    async def test_per_appliance_limit_is_429_with_retry_after(self, client, world) -> None:
        codes = [(await client.post("/api/v1/heartbeat", json=beat(s),
                                    headers=world.auth("appliance"))).status_code
                 for s in range(1, 5)]
        assert codes == [200, 200, 200, 429]
        limited = await client.post("/api/v1/heartbeat", json=beat(9),
                                    headers=world.auth("appliance"))
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 61
        # another appliance has its own budget
        other = await client.post("/api/v1/heartbeat", json=beat(1),
                                  headers=world.auth("other-appliance"))
        assert other.status_code == 200


async def test_a_differing_heartbeat_queues_its_appliance_each_time(client, world) -> None:
    """The trigger remembers its verdict per (head, observed digest) and batches its Redis
    work; the key is still queued before the 200, on the first and on a repeated report."""
    from redis.asyncio import Redis

    from tests.api.conftest import REDIS_URL

    redis = Redis.from_url(REDIS_URL)
    try:
        observed = {"users": {"users": [{"name": "drifted", "uid": 1500}]}}
        for sequence in (1, 2):
            await redis.delete("hearth:queue:reconcile:ready")
            response = await client.post("/api/v1/heartbeat",
                                         json=beat(sequence, observed=observed),
                                         headers=world.auth("appliance"))
            assert response.status_code == 200, response.text
            queued = await redis.zrange("hearth:queue:reconcile:ready", 0, -1)
            assert queued == [f"acme/{APPLIANCE}".encode()]
    finally:
        await redis.aclose()


class TestRateLimitUnderConcurrency:
    @pytest.fixture
    def limits(self) -> Limits:
        return Limits(heartbeat_per_minute=3)

    async def test_batched_counting_lets_exactly_the_limit_through(self, client, world) -> None:
        responses = await asyncio.gather(*(client.post("/api/v1/heartbeat", json=beat(s),
                                                       headers=world.auth("appliance"))
                                           for s in range(1, 9)))
        codes = sorted(r.status_code for r in responses)
        assert codes.count(429) == 5 and set(codes[:3]) <= {200, 409}


async def test_unknown_token_with_a_skewed_clock_is_401_not_400(client, world) -> None:
    body = beat(1, sent_at=datetime.now(UTC) - timedelta(hours=3))
    unknown = {"Authorization": "Bearer hth_app_" + "x" * 43}
    assert (await client.post("/api/v1/heartbeat", json=body, headers=unknown)).status_code == 401
    assert (await client.post("/api/v1/heartbeat", json=beat(1),
                              headers=unknown)).status_code == 401
    assert await _counts(world) == (0, 0)


async def test_concurrent_heartbeats_of_one_token_keep_the_highest(client, world) -> None:
    headers = world.auth("appliance")
    codes = await asyncio.gather(*(client.post("/api/v1/heartbeat", json=beat(s), headers=headers)
                                   for s in (1, 2, 3)))
    assert 200 in [c.status_code for c in codes]
    assert {c.status_code for c in codes} <= {200, 409}
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        assert await conn.fetchval("SELECT max(sequence) FROM observed_latest") == 3
    finally:
        await conn.close()


async def test_write_batch_by_token_resolves_in_the_write(world) -> None:
    """One statement: unknown tokens store nothing (None), a repeated token goes in a second
    round, two live tokens of one appliance are written one after the other, history stays
    bounded."""
    from engine.db import appliances
    from engine.db.heartbeats import HeartbeatRow, write_batch_by_token

    key = world.settings.secret_key
    token = world.appliance_tokens["acme/front-office"]
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        appliance_id = world.appliance_ids["acme/front-office"]
        second = appliances.new_token()
        await conn.execute("INSERT INTO appliance_tokens (appliance_id, token_hash, hint) "
                           "VALUES ($1, $2, 'xxxx')", appliance_id,
                           appliances.hash_token(key, second))
        now = datetime.now(UTC)

        def row(tok: str, seq: int) -> HeartbeatRow:
            return HeartbeatRow(appliance_id=None, sequence=seq, sent_at=now,  # type: ignore[arg-type]
                                received_at=now, agent_version="1", applied_revision=None,
                                observed="{}", services="[]", facts="{}",
                                token_hash=appliances.hash_token(key, tok))

        result = await write_batch_by_token(conn, [
            row(token, 1), row("hth_app_" + "y" * 43, 1), row(token, 3), row(second, 2),
            row(token, 2)], history_limit=2)
        assert result[1] is None
        assert [r.accepted if r else None for r in result] == [True, None, True, False, False]
        assert all(str(r.appliance["appliance_id"]) == appliance_id for r in result if r)
        assert result[0].appliance["tenant"] == "acme"
        assert result[0].appliance["name"] == "front-office"
        assert await conn.fetchval("SELECT sequence FROM observed_latest") == 3
        assert [r["sequence"] for r in await conn.fetch(
            "SELECT sequence FROM observed_history ORDER BY sequence")] == [1, 3]
        for seq in (4, 5, 6):
            assert (await write_batch_by_token(conn, [row(token, seq)], history_limit=2)
                    )[0].accepted
        assert [r["sequence"] for r in await conn.fetch(
            "SELECT sequence FROM observed_history ORDER BY sequence")] == [5, 6]
    finally:
        await conn.close()


@pytest.mark.parametrize("poison", [
    {"facts": {"kernel": "6.1\u0000"}},
    {"services": [{"name": "named\u0000", "status": "running"}]},
    {"agent_version": "1.2\u0000"},
    {"observed": {"users": {"users": [{"name": "ann\u0000", "uid": 1000}]}}},
], ids=["fact", "service", "agent-version", "observed"])
async def test_a_nul_character_is_400_and_does_not_fail_the_batch_it_would_join(
        client, world, poison) -> None:
    """PostgreSQL cannot store NUL; one such heartbeat must not fail its neighbours'."""
    bad, good = await asyncio.gather(
        client.post("/api/v1/heartbeat", json=beat(1) | poison, headers=world.auth("appliance")),
        client.post("/api/v1/heartbeat", json=beat(1),
                    headers={"Authorization": "Bearer "
                             + world.appliance_tokens["globex/front-office"]}))
    assert bad.status_code == 400, bad.text
    assert bad.headers["content-type"].startswith("application/problem+json")
    assert good.status_code == 200, good.text
    assert await _counts(world) == (1, 1)


async def _audit(world, action: str) -> list[tuple[str, dict]]:
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        rows = await conn.fetch("SELECT actor_id, details FROM audit_events WHERE action = $1 "
                                "ORDER BY id", action)
    finally:
        await conn.close()
    return [(r["actor_id"], json.loads(r["details"])) for r in rows]


async def test_reenrolment_resumes_above_the_stored_sequence_and_replays_stay_refused(
        client, world) -> None:
    """An agent that lost its state directory starts again at 1 and gets 409 forever unless
    it can learn where its sequence stands; the baseline is never lowered, so a heartbeat
    captured before (sequence 500) is still refused after the re-enrolment."""
    headers = world.auth("appliance")
    captured = beat(500)
    assert (await client.post("/api/v1/heartbeat", json=captured, headers=headers)
            ).status_code == 200
    assert (await client.post("/api/v1/heartbeat", json=beat(1), headers=headers)
            ).status_code == 409
    answer = await client.post("/api/v1/heartbeat/reenrol", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"last_sequence": 500}
    assert (await client.post("/api/v1/heartbeat", json=beat(501), headers=headers)
            ).status_code == 200
    replay = await client.post("/api/v1/heartbeat", json=captured, headers=headers)
    assert replay.status_code == 409
    # the other tenant's appliance sees only its own sequence
    other = await client.post("/api/v1/heartbeat/reenrol", headers=world.auth("other-appliance"))
    assert other.json() == {"last_sequence": 0}
    assert await _audit(world, "heartbeat.reenrol") == [
        (world.appliance_ids["acme/front-office"], {"last_sequence": 500}),
        (world.appliance_ids["globex/front-office"], {"last_sequence": 0}),
    ]


@pytest.mark.parametrize("who", ["anonymous", "operator", "admin", "revoked", "unknown"])
async def test_reenrolment_takes_only_a_live_appliance_token(client, world, who) -> None:
    headers = {"anonymous": {}, "operator": world.auth("operator"), "admin": world.auth("admin"),
               "revoked": world.auth("appliance"),
               "unknown": {"Authorization": "Bearer hth_app_" + "x" * 43}}[who]
    if who == "revoked":
        appliance = world.appliance_ids["acme/front-office"]
        revoke = await client.delete(f"/api/v1/appliances/{appliance}/token",
                                     headers=world.auth("operator"))
        assert revoke.status_code == 204
    response = await client.post("/api/v1/heartbeat/reenrol", headers=headers)
    assert response.status_code == 401, response.text
    assert await _audit(world, "heartbeat.reenrol") == []


AGENT = Path(__file__).resolve().parents[2] / "ansible/roles/agent/files/hearth-agent.py"


@pytest.fixture
def live_api(settings, world, limits) -> Iterator[str]:
    """The API served over HTTP on loopback (uvicorn in a thread), for the real agent."""
    import uvicorn

    from api.app import create_app

    app = create_app(settings, limits=limits, migrate=False, pool_size=2)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the API did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


def _run_agent(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["python3", str(AGENT), "--once", "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=False)


async def test_the_agent_re_enrols_after_losing_its_state_directory(live_api, world,
                                                                      tmp_path) -> None:
    """Through the real API: the box reported up to 500, then its state directory was
    lost. The agent's 1 gets 409; it re-enrols with its token and its report goes in
    as 501, and the state it writes continues from there."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "sequence").write_text("499\n")
    (tmp_path / "token").write_text(world.appliance_tokens["acme/front-office"] + "\n")
    config = tmp_path / "agent.json"
    config.write_text(json.dumps({"api_url": live_api, "state_dir": str(state),
                                  "token_file": str(tmp_path / "token")}))
    first = await asyncio.to_thread(_run_agent, config)
    assert first.returncode == 0, first.stderr
    shutil.rmtree(state)
    second = await asyncio.to_thread(_run_agent, config)
    assert second.returncode == 0, second.stderr
    assert "re-enrolled, sending 501" in second.stderr
    assert (state / "sequence").read_text() == "501\n"
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        assert await conn.fetchval("SELECT sequence FROM observed_latest") == 501
        assert [r["sequence"] for r in await conn.fetch(
            "SELECT sequence FROM observed_history ORDER BY sequence")] == [500, 501]
    finally:
        await conn.close()
    assert await _audit(world, "heartbeat.reenrol") == [
        (world.appliance_ids["acme/front-office"], {"last_sequence": 500})]


def _metric(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _rejections(world) -> list[tuple]:
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT actor_kind, actor_id, tenant_id, outcome, target, details FROM audit_events "
            "WHERE action = 'heartbeat.reject' ORDER BY id")
    finally:
        await conn.close()
    return [(*tuple(r)[:5], json.loads(r["details"])) for r in rows]


async def test_an_accepted_heartbeat_is_stored_field_by_field_and_counted(client, world) -> None:
    accepted = _metric("hearth_heartbeats_accepted_total")
    timed = _metric("hearth_heartbeat_write_seconds_count")
    body = beat(7, applied_revision="a" * 40,
                observed={"users": {"users": [{"name": "ann", "uid": 1000}]}})
    response = await client.post("/api/v1/heartbeat", json=body, headers=world.auth("appliance"))
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted_sequence": 7, "desired_revision": world.heads["acme"],
                               "next_interval_seconds": 30}
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT appliance_id::text, sequence, sent_at, received_at, agent_version, "
            "applied_revision, observed->'users'->'users' AS users, services, facts "
            "FROM observed_latest")
    finally:
        await conn.close()
    assert row["appliance_id"] == world.appliance_ids["acme/front-office"]
    assert (row["sequence"], row["agent_version"], row["applied_revision"]) == (7, "1.2.3", "a" * 40)
    assert row["sent_at"].isoformat() == body["sent_at"]
    assert 0 <= (row["received_at"] - row["sent_at"]).total_seconds() < 30
    assert [u["name"] for u in json.loads(row["users"])] == ["ann"]
    assert json.loads(row["services"]) == [{"name": "named", "status": "running", "message": ""}]
    assert json.loads(row["facts"]) == {"kernel": "6.1"}
    assert _metric("hearth_heartbeats_accepted_total") == accepted + 1
    assert _metric("hearth_heartbeat_write_seconds_count") == timed + 1


async def test_a_stale_sequence_is_audited_and_counted_by_reason(client, world) -> None:
    headers = world.auth("appliance")
    stale = _metric("hearth_heartbeats_rejected_total", reason="stale_sequence")
    assert (await client.post("/api/v1/heartbeat", json=beat(5), headers=headers)).status_code == 200
    refused = await client.post("/api/v1/heartbeat", json=beat(5), headers=headers)
    assert refused.status_code == 409
    assert refused.json()["detail"] == "sequence 5 is not above the last one stored"
    appliance = world.appliance_ids["acme/front-office"]
    assert await _rejections(world) == [
        ("appliance", appliance, world.tenant_ids["acme"], "failure", f"appliance:{appliance}",
         {"reason": "stale_sequence", "sequence": 5})]
    assert _metric("hearth_heartbeats_rejected_total", reason="stale_sequence") == stale + 1


async def test_a_skewed_clock_is_audited_with_the_skew(client, world) -> None:
    skewed = _metric("hearth_heartbeats_rejected_total", reason="clock_skew")
    body = beat(1, sent_at=datetime.now(UTC) - timedelta(minutes=10))
    response = await client.post("/api/v1/heartbeat", json=body, headers=world.auth("appliance"))
    assert response.status_code == 400
    # 600 s, plus however long the request took to arrive (well under 30 s)
    [(kind, actor, tenant, outcome, target, details)] = await _rejections(world)
    appliance = world.appliance_ids["acme/front-office"]
    assert (kind, actor, tenant, outcome, target) == (
        "appliance", appliance, world.tenant_ids["acme"], "failure", f"appliance:{appliance}")
    assert sorted(details) == ["reason", "skew_seconds"] and details["reason"] == "clock_skew"
    assert 600 <= details["skew_seconds"] < 630
    assert response.json()["detail"] == (
        f"sent_at is {details['skew_seconds']} s away from the server clock (limit 300 s); "
        "fix the appliance's time")
    assert _metric("hearth_heartbeats_rejected_total", reason="clock_skew") == skewed + 1
    assert await _counts(world) == (0, 0)


async def test_a_skew_inside_the_bound_is_accepted(client, world) -> None:
    for sequence, offset in ((1, timedelta(minutes=4)), (2, -timedelta(minutes=4))):
        body = beat(sequence, sent_at=datetime.now(UTC) + offset)
        response = await client.post("/api/v1/heartbeat", json=body,
                                     headers=world.auth("appliance"))
        assert response.status_code == 200, response.text
    assert await _counts(world) == (1, 2)


async def test_an_escaped_backslash_before_u0000_is_text_not_a_nul(client, world) -> None:
    # The JSON text holds \\u0000: a backslash followed by "u0000", which PostgreSQL stores.
    body = beat(1, facts={"path": "C:\\u0000dir"})
    response = await client.post("/api/v1/heartbeat", json=body, headers=world.auth("appliance"))
    assert response.status_code == 200, response.text
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        facts = await conn.fetchval("SELECT facts FROM observed_latest")
    finally:
        await conn.close()
    assert json.loads(facts) == {"path": "C:\\u0000dir"}


class _BrokenTrigger:
    """Stands in for the heartbeat trigger (our own seam): its check always fails."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.texts: list[str] = []

    async def observe(self, tenant, appliance, observed, *, observed_json) -> None:
        # the parsed report and its JSON text, which must say the same
        self.calls.append((tenant, appliance, observed.model_dump_json()))
        self.texts.append(observed_json)
        raise ConnectionError("redis went away")


async def test_a_failing_trigger_never_fails_a_stored_heartbeat(client, world, caplog) -> None:
    broken = _BrokenTrigger()
    client.app.state.ctx = dataclasses.replace(client.app.state.ctx, heartbeat_trigger=broken)
    response = await client.post("/api/v1/heartbeat", json=beat(1),
                                 headers=world.auth("appliance"))
    assert response.status_code == 200, response.text
    assert await _counts(world) == (1, 1)
    assert [(t, a) for t, a, _ in broken.calls] == [("acme", APPLIANCE)]
    conn = await asyncpg.connect(world.settings.database_url)
    try:
        stored = await conn.fetchval("SELECT observed FROM observed_latest")
    finally:
        await conn.close()
    assert json.loads(broken.calls[0][2]) == json.loads(stored)  # the text that was stored
    assert broken.texts == [broken.calls[0][2]]
    warnings = [r for r in caplog.records if r.name == "hearth.api.heartbeat"]
    assert [r.getMessage() for r in warnings] == [
        f"could not check heartbeat of acme/{APPLIANCE} against desired state"]
    assert warnings[0].levelname == "WARNING"


async def test_without_a_trigger_a_heartbeat_is_stored_and_nothing_queued(client, world) -> None:
    from redis.asyncio import Redis

    from tests.api.conftest import REDIS_URL

    client.app.state.ctx = dataclasses.replace(client.app.state.ctx, heartbeat_trigger=None)
    observed = {"users": {"users": [{"name": "drifted", "uid": 1500}]}}
    response = await client.post("/api/v1/heartbeat", json=beat(1, observed=observed),
                                  headers=world.auth("appliance"))
    assert response.status_code == 200, response.text
    redis = Redis.from_url(REDIS_URL)
    try:
        assert await redis.zrange("hearth:queue:reconcile:ready", 0, -1) == []
    finally:
        await redis.aclose()
