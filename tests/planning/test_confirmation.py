"""One run per change, from literal tables: when a heartbeat is awaiting confirmation
(``policy.awaiting_confirmation``), what the pass decides then (``choose``), and when a
heartbeat counts as after a run (``health.heartbeat_after_run``, which the status and
the applied revision follow)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.planning.health import (
    HeartbeatSummary,
    RunSummary,
    StatusInputs,
    applied_after,
    heartbeat_after_run,
    status_after,
)
from engine.planning.policy import AppliedRun, Decision, awaiting_confirmation, choose
from schemas.config import Policies
from schemas.plan import DiffItem, Plan
from schemas.status import HealthStatus

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OLD, REV = "1" * 40, "2" * 40
INTERVAL = timedelta(seconds=30)
RUN_7 = AppliedRun(id=7, revision=REV, finished_at=NOW - timedelta(seconds=10))
DRIFT = Plan.of(appliance="acme/office", revision=REV, items=[
    DiffItem(domain="users", operation="add", path=("users", "eve"), reason="missing")])
IN_SYNC = Plan.of(appliance="acme/office", revision=REV)


def _seconds_after_run(seconds: int) -> datetime:
    return RUN_7.finished_at + timedelta(seconds=seconds)


@pytest.mark.parametrize(("applied", "reported", "received_at", "revision", "expected"), [
    pytest.param(RUN_7, 6, _seconds_after_run(2), REV, True, id="names-the-run-before"),
    pytest.param(RUN_7, None, _seconds_after_run(2), REV, False,
                 id="agent-that-does-not-report-runs"),
    pytest.param(RUN_7, 7, _seconds_after_run(2), REV, False, id="names-the-run"),
    pytest.param(RUN_7, 8, _seconds_after_run(2), REV, False, id="names-a-later-run"),
    pytest.param(RUN_7, 6, _seconds_after_run(2), OLD, False, id="desired-moved-on"),
    pytest.param(RUN_7, 6, _seconds_after_run(-5), REV, True, id="received-during-the-run"),
    pytest.param(RUN_7, 6, _seconds_after_run(59), REV, True, id="just-inside-two-intervals"),
    pytest.param(RUN_7, 6, _seconds_after_run(60), REV, False,
                 id="two-intervals-later-counts-again"),
    pytest.param(None, 6, _seconds_after_run(2), REV, False, id="no-run-ever-succeeded"),
    pytest.param(RUN_7, 6, None, REV, False, id="no-heartbeat"),
])
def test_awaiting_confirmation(applied: AppliedRun | None, reported: int | None,
                               received_at: datetime | None, revision: str,
                               expected: bool) -> None:
    assert awaiting_confirmation(applied=applied, reported_run=reported,
                                 received_at=received_at, revision=revision,
                                 heartbeat_interval=INTERVAL) is expected


@pytest.mark.parametrize(("plan", "manual", "expected"), [
    pytest.param(DRIFT, False, Decision(
        False, "AwaitingConfirmation",
        "run 7 applied revision 222222222222; waiting for a heartbeat collected after it"),
        id="no-self-heal-from-a-stale-report"),
    pytest.param(DRIFT, True, Decision(True, "ManualSync", "an operator asked for a sync"),
                 id="a-manual-sync-still-runs"),
    pytest.param(IN_SYNC, False, Decision(False, "NothingToDo"), id="empty-plan"),
])
def test_choose_while_awaiting(plan: Plan, manual: bool, expected: Decision) -> None:
    assert choose(plan=plan, policy=Policies(auto_sync=True, self_heal=True),
                  applied_revision=REV, manual=manual, dry_run=False, stalled=False, now=NOW,
                  awaiting=RUN_7) == expected


def _beat(seconds_after_run: int, *, reported: int | None = None, stale: bool = False,
          plan: Plan = IN_SYNC) -> HeartbeatSummary:
    return HeartbeatSummary(received_at=_seconds_after_run(seconds_after_run), plan=plan,
                            reported_run=reported, stale=stale)


RUN = RunSummary(outcome="succeeded", revision=REV, plan=DRIFT, finished_at=RUN_7.finished_at,
                 run_id=7)


@pytest.mark.parametrize(("heartbeat", "run", "expected"), [
    pytest.param(_beat(-1, reported=7), RUN, True, id="the-runs-own-report-before-its-end"),
    pytest.param(_beat(-1, reported=6), RUN, False, id="an-older-run-before-the-end"),
    pytest.param(_beat(-1), RUN, False, id="before-the-end-no-run-named"),
    pytest.param(_beat(1), RUN, True, id="after-the-end-no-run-named"),
    pytest.param(_beat(1, reported=6, stale=True), RUN, False, id="after-the-end-but-stale"),
    pytest.param(_beat(1, reported=6), None, True, id="no-run"),
])
def test_heartbeat_after_run(heartbeat: HeartbeatSummary, run: RunSummary | None,
                             expected: bool) -> None:
    assert heartbeat_after_run(heartbeat, run) is expected


def test_a_stale_report_keeps_the_appliance_progressing_not_degraded() -> None:
    """The stale report still shows what the run changed: that is not StillDiffers."""
    status = status_after(StatusInputs(
        now=NOW, desired_revision=REV, applied_revision=REV,
        heartbeat=_beat(2, reported=6, stale=True, plan=DRIFT), heartbeat_interval=INTERVAL,
        last_run=RUN))
    assert (status.health, status.conditions[0].reason) == (HealthStatus.PROGRESSING,
                                                            "AwaitingHeartbeat")


def test_the_runs_own_report_confirms_it() -> None:
    heartbeat = _beat(-1, reported=7)
    assert applied_after(applied_revision=OLD, desired_revision=REV, heartbeat=heartbeat,
                         last_run=RUN) == REV
    status = status_after(StatusInputs(
        now=NOW, desired_revision=REV, applied_revision=REV, heartbeat=heartbeat,
        heartbeat_interval=INTERVAL, last_run=RUN))
    assert (status.health, status.conditions[0].reason) == (HealthStatus.HEALTHY,
                                                            "ReconciliationSucceeded")
