"""status_after: sync, health and conditions for each situation, from literal values."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from engine.planning.health import HeartbeatSummary, RunSummary, StatusInputs, status_after
from schemas.plan import DiffItem, Plan
from schemas.status import ApplianceStatus, HealthStatus, SyncStatus

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
R1, R2 = "1" * 40, "2" * 40
APPLIANCE = "acme/office-1"

ADD_DAVE = DiffItem(domain="users", operation="add", path=("users", "dave"),
                    after={"shell": "/bin/bash"}, reason="missing")
SHARE_PATH = DiffItem(domain="samba", operation="modify", path=("shares", "data", "path"),
                      before="/srv/data", after="/srv/data2", reason="differs")
UNMANAGED = DiffItem(domain="users", operation="remove", path=("users", "eve"),
                     reason="extra", managed=False)
NEEDS_PRUNE = DiffItem(domain="users", operation="remove", path=("users", "eve"),
                       reason="extra", managed=True)

EMPTY = Plan.of(appliance=APPLIANCE, revision=R2)
ONLY_UNMANAGED = Plan.of(appliance=APPLIANCE, revision=R2, extras=[UNMANAGED])
PRUNE_PENDING = Plan.of(appliance=APPLIANCE, revision=R2, extras=[NEEDS_PRUNE])
DAVE = Plan.of(appliance=APPLIANCE, revision=R2, items=[ADD_DAVE])
SHARE = Plan.of(appliance=APPLIANCE, revision=R2, items=[SHARE_PATH])


def _beat(plan: Plan, *, ago: int = 10) -> HeartbeatSummary:
    return HeartbeatSummary(received_at=NOW - timedelta(seconds=ago), plan=plan)


def _run(outcome: str, *, plan: Plan = DAVE, ended_ago: int | None = 30,
         error: str = "") -> RunSummary:
    finished = None if ended_ago is None else NOW - timedelta(seconds=ended_ago)
    return RunSummary(outcome=outcome, revision=R2, plan=plan,  # type: ignore[arg-type]
                      finished_at=finished, error=error)


BASE = StatusInputs(now=NOW, desired_revision=R2, applied_revision=R2,
                    heartbeat_interval=timedelta(seconds=60))

# (id, inputs, sync, health, Ready reason, extra condition types)
CASES = [
    ("converged", replace(BASE, heartbeat=_beat(EMPTY)),
     SyncStatus.SYNCED, HealthStatus.HEALTHY, "ReconciliationSucceeded", set()),
    ("unmanaged-extras-still-synced", replace(BASE, heartbeat=_beat(ONLY_UNMANAGED)),
     SyncStatus.SYNCED, HealthStatus.HEALTHY, "ReconciliationSucceeded", set()),
    ("requires-pruning-is-out-of-sync", replace(BASE, heartbeat=_beat(PRUNE_PENDING)),
     SyncStatus.OUT_OF_SYNC, HealthStatus.HEALTHY, "DriftDetected", set()),
    ("no-heartbeat-yet", BASE,
     SyncStatus.UNKNOWN, HealthStatus.MISSING, "NoHeartbeat", set()),
    ("heartbeat-2-intervals-old", replace(BASE, heartbeat=_beat(EMPTY, ago=120)),
     SyncStatus.SYNCED, HealthStatus.HEALTHY, "ReconciliationSucceeded", set()),
    ("heartbeat-3-intervals-old", replace(BASE, heartbeat=_beat(EMPTY, ago=181)),
     SyncStatus.SYNCED, HealthStatus.MISSING, "HeartbeatMissing", set()),
    ("run-in-progress", replace(BASE, heartbeat=_beat(DAVE),
                                last_run=_run("running", ended_ago=None)),
     SyncStatus.OUT_OF_SYNC, HealthStatus.PROGRESSING, "RunInProgress", {"Reconciling"}),
    ("run-succeeded-awaiting-heartbeat", replace(BASE, heartbeat=_beat(DAVE, ago=40),
                                                  last_run=_run("succeeded", ended_ago=30)),
     SyncStatus.OUT_OF_SYNC, HealthStatus.PROGRESSING, "AwaitingHeartbeat", {"Reconciling"}),
    ("run-succeeded-heartbeat-confirms", replace(BASE, heartbeat=_beat(EMPTY, ago=10),
                                                  last_run=_run("succeeded", ended_ago=30)),
     SyncStatus.SYNCED, HealthStatus.HEALTHY, "ReconciliationSucceeded", set()),
    ("run-succeeded-still-differs", replace(BASE, heartbeat=_beat(DAVE, ago=10),
                                             last_run=_run("succeeded", ended_ago=30)),
     SyncStatus.OUT_OF_SYNC, HealthStatus.DEGRADED, "StillDiffers", set()),
    ("new-drift-after-good-run", replace(BASE, heartbeat=_beat(SHARE, ago=10),
                                          last_run=_run("succeeded", ended_ago=30)),
     SyncStatus.OUT_OF_SYNC, HealthStatus.HEALTHY, "DriftDetected", set()),
    ("run-failed", replace(BASE, heartbeat=_beat(DAVE), failure_count=1,
                           last_run=_run("failed", error="useradd: exit 9")),
     SyncStatus.OUT_OF_SYNC, HealthStatus.DEGRADED, "RunFailed", set()),
    ("run-failed-3-times-stalls", replace(BASE, heartbeat=_beat(DAVE), failure_count=3,
                                          last_run=_run("failed", error="useradd: exit 9")),
     SyncStatus.OUT_OF_SYNC, HealthStatus.DEGRADED, "RetriesExhausted", {"Stalled"}),
    ("run-interrupted", replace(BASE, heartbeat=_beat(DAVE), last_run=_run("interrupted")),
     SyncStatus.OUT_OF_SYNC, HealthStatus.PROGRESSING, "RunInterrupted", {"Reconciling"}),
    ("failed-run-but-box-fine", replace(BASE, heartbeat=_beat(EMPTY, ago=10), failure_count=1,
                                        last_run=_run("failed", ended_ago=30)),
     SyncStatus.SYNCED, HealthStatus.HEALTHY, "ReconciliationSucceeded", set()),
    ("missing-beats-running", replace(BASE, heartbeat=_beat(DAVE, ago=600),
                                      last_run=_run("running", ended_ago=None)),
     SyncStatus.OUT_OF_SYNC, HealthStatus.MISSING, "HeartbeatMissing", set()),
    ("invalid-revision-keeps-last-good", replace(BASE, heartbeat=_beat(EMPTY),
                                                  config_error="users.yaml:3:5: bad shell"),
     SyncStatus.SYNCED, HealthStatus.HEALTHY, "ReconciliationSucceeded", {"SourceValid"}),
]


@pytest.mark.parametrize(("inputs", "sync", "health", "reason", "extra"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_status_after(inputs: StatusInputs, sync: SyncStatus, health: HealthStatus,
                      reason: str, extra: set[str]) -> None:
    status = status_after(inputs)
    assert (status.sync, status.health) == (sync, health)
    ready = status.condition("Ready")
    assert ready is not None and ready.reason == reason
    assert ready.status == ("True" if (sync, health) == (SyncStatus.SYNCED, HealthStatus.HEALTHY)
                            else "Unknown" if health is HealthStatus.PROGRESSING else "False")
    assert {c.type for c in status.conditions} == {"Ready", *extra}
    assert all(c.desired_revision == R2 for c in status.conditions)
    assert status.message == ready.message or inputs.config_error


def test_still_differs_message_names_the_difference() -> None:
    status = status_after(replace(BASE, heartbeat=_beat(DAVE), last_run=_run("succeeded")))
    assert "users add users/dave" in status.message


def test_stalled_message_carries_the_error() -> None:
    status = status_after(replace(BASE, heartbeat=_beat(DAVE), failure_count=3,
                                  last_run=_run("failed", error="useradd: exit 9")))
    assert "useradd: exit 9" in status.message
    assert "new revision" in status.message


def test_invalid_revision_says_why() -> None:
    status = status_after(replace(BASE, heartbeat=_beat(EMPTY), config_error="bad shell"))
    source = status.condition("SourceValid")
    assert (source.status, source.reason, source.message) == ("False", "ValidationFailed",
                                                              "bad shell")
    assert status.desired_revision == R2 and "invalid" in status.message


def test_converged_means_applied_equals_desired() -> None:
    assert status_after(replace(BASE, heartbeat=_beat(EMPTY))).converged
    assert not status_after(replace(BASE, heartbeat=_beat(EMPTY),
                                    applied_revision=R1)).converged


def test_transition_time_kept_while_status_unchanged() -> None:
    first = status_after(replace(BASE, heartbeat=_beat(EMPTY), now=NOW))
    later = NOW + timedelta(minutes=5)
    second = status_after(replace(BASE, heartbeat=_beat(EMPTY, ago=-290), now=later),
                          previous=first)
    assert second.condition("Ready").last_transition == NOW
    third = status_after(replace(BASE, heartbeat=_beat(DAVE, ago=-290), now=later,
                                 last_run=_run("failed", ended_ago=-200)), previous=second)
    assert third.condition("Ready").last_transition == later


def test_status_round_trips_as_json() -> None:
    status = status_after(replace(BASE, heartbeat=_beat(DAVE), last_run=_run("succeeded")))
    assert ApplianceStatus.model_validate_json(status.model_dump_json()) == status
