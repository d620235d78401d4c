"""The applied-revision rule and the decision message, from literal tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.planning.health import HeartbeatSummary, RunSummary, applied_after, with_decision
from engine.planning.policy import Decision
from schemas.plan import DiffItem, Plan
from schemas.status import ApplianceStatus, HealthStatus, SyncStatus

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
OLD, NEW = "1" * 40, "2" * 40
IN_SYNC = Plan.of(appliance="acme/office", revision=NEW)
DRIFT = Plan.of(appliance="acme/office", revision=NEW, items=[
    DiffItem(domain="users", operation="add", path=("users", "eve"), reason="missing")])


def beat(minutes_ago: int, plan: Plan) -> HeartbeatSummary:
    return HeartbeatSummary(received_at=NOW - timedelta(minutes=minutes_ago), plan=plan)


def run(outcome: str, finished_minutes_ago: int | None) -> RunSummary:
    finished = None if finished_minutes_ago is None else NOW - timedelta(
        minutes=finished_minutes_ago)
    return RunSummary(outcome=outcome, revision=OLD, plan=DRIFT,  # type: ignore[arg-type]
                      finished_at=finished)


@pytest.mark.parametrize(("heartbeat", "last_run", "expected"), [
    pytest.param(None, None, OLD, id="no-heartbeat-keeps-applied"),
    pytest.param(beat(1, IN_SYNC), None, NEW, id="in-sync-never-run"),
    pytest.param(beat(1, DRIFT), None, OLD, id="drift-never-run"),
    pytest.param(beat(1, IN_SYNC), run("succeeded", 2), NEW, id="in-sync-after-run"),
    pytest.param(beat(3, IN_SYNC), run("succeeded", 2), OLD, id="in-sync-before-run-ended"),
    pytest.param(beat(2, IN_SYNC), run("failed", 2), NEW, id="in-sync-at-the-run-end"),
    pytest.param(beat(5, IN_SYNC), run("running", None), NEW, id="in-sync-while-running"),
    pytest.param(beat(1, DRIFT), run("succeeded", 2), OLD, id="drift-after-run"),
    pytest.param(beat(1, IN_SYNC), run("interrupted", None), OLD,
                 id="interrupted-without-end-time"),
])
def test_applied_after(heartbeat: HeartbeatSummary | None, last_run: RunSummary | None,
                       expected: str) -> None:
    assert applied_after(applied_revision=OLD, desired_revision=NEW, heartbeat=heartbeat,
                         last_run=last_run) == expected


STATUS = ApplianceStatus(sync=SyncStatus.OUT_OF_SYNC, health=HealthStatus.HEALTHY,
                         message="users add users/eve: add (missing)")


@pytest.mark.parametrize(("plan", "decision", "message"), [
    pytest.param(DRIFT, None, "users add users/eve: add (missing)", id="no-decision"),
    pytest.param(DRIFT, Decision(True, "SelfHeal", "drift"),
                 "users add users/eve: add (missing)", id="ran"),
    pytest.param(DRIFT, Decision(False, "OutsideWindow", "waiting for 22:00-06:00"),
                 "users add users/eve: add (missing); waiting for 22:00-06:00",
                 id="held-by-window"),
    pytest.param(DRIFT, Decision(False, "Stalled", "waiting for a new revision"),
                 "users add users/eve: add (missing)", id="stalled-says-it-elsewhere"),
    pytest.param(IN_SYNC, Decision(False, "InSync", "nothing to do"),
                 "users add users/eve: add (missing)", id="empty-plan"),
])
def test_with_decision(plan: Plan, decision: Decision | None, message: str) -> None:
    assert with_decision(STATUS, plan=plan, decision=decision).message == message


def test_with_decision_on_an_empty_message() -> None:
    quiet = ApplianceStatus(sync=SyncStatus.OUT_OF_SYNC, health=HealthStatus.HEALTHY)
    held = with_decision(quiet, plan=DRIFT, decision=Decision(False, "AutoSyncOff", "auto-sync off"))
    assert held.message == "auto-sync off"
