"""``status_as_read``: a stored status with what is known since, as a literal table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.planning.health import ReadInputs, status_as_read
from schemas.plan import DiffItem, Plan
from schemas.status import ApplianceStatus, Condition

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
STORED_AT = NOW - timedelta(seconds=20)
OLD, NEW = "a" * 40, "b" * 40
DRIFT = DiffItem(domain="users", operation="add", path=("users", "dave"), reason="missing")


def _stored(health: str = "Healthy", reason: str = "ReconciliationSucceeded",
            ready: str = "True", message: str = "the appliance matches desired state"
            ) -> ApplianceStatus:
    conditions = [Condition(type="Ready", status=ready, reason=reason, message=message,
                            last_transition=STORED_AT, desired_revision=OLD,
                            applied_revision=OLD)]
    if health == "Progressing":
        conditions.append(Condition(type="Reconciling", status="True", reason=reason,
                                    message=message, last_transition=STORED_AT))
    return ApplianceStatus(sync="Synced" if ready == "True" else "OutOfSync", health=health,
                           conditions=tuple(conditions), desired_revision=OLD,
                           applied_revision=OLD)


RUNNING = _stored("Progressing", "RunInProgress", "Unknown", "run 7 applying revision aaaa")


def _plan(revision: str, *items: DiffItem) -> Plan:
    return Plan.of(appliance="acme/office-1", revision=revision, items=items)


CASES = [
    # id, stored, heartbeat age (s), revision, plan, source error
    #   -> sync, health, Ready reason, start of the Ready message
    ("older-heartbeat-keeps-stored", _stored(), 25, OLD, _plan(OLD, DRIFT), None,
     "Synced", "Healthy", "ReconciliationSucceeded", "the appliance matches"),
    ("newer-drift", _stored(), 5, OLD, _plan(OLD, DRIFT), None,
     "OutOfSync", "Healthy", "DriftDetected", "the appliance differs from desired state: "),
    ("newer-in-sync", _stored(), 5, OLD, _plan(OLD), None,
     "Synced", "Healthy", "ReconciliationSucceeded", "the appliance matches"),
    ("drift-during-run", RUNNING, 5, OLD, _plan(OLD, DRIFT), None,
     "OutOfSync", "Progressing", "RunInProgress", "run 7 applying revision aaaa; the appliance"),
    ("revision-pending", _stored(), 25, NEW, _plan(NEW, DRIFT), None,
     "OutOfSync", "Healthy", "RevisionPending", f"revision {NEW[:12]} of main is not applied"),
    ("revision-not-touching-it", _stored(), 25, NEW, _plan(NEW), None,
     "Synced", "Healthy", "ReconciliationSucceeded", "the appliance matches"),
    ("missing-when-read", _stored(), 100, OLD, _plan(OLD), None,
     "Synced", "Missing", "HeartbeatMissing", "no heartbeat for 100 s"),
    ("missing-while-running", RUNNING, 100, OLD, _plan(OLD), None,
     "OutOfSync", "Missing", "HeartbeatMissing", "no heartbeat for 100 s"),
    ("no-heartbeat", _stored(), None, OLD, None, None,
     "Synced", "Missing", "NoHeartbeat", "no heartbeat received yet"),
    ("resumed", _stored("Missing", "HeartbeatMissing", "False", "no heartbeat for 99 s"), 5,
     OLD, _plan(OLD), None,
     "Synced", "Progressing", "HeartbeatResumed", "heartbeats resumed at "),
    ("invalid-head", _stored(), 25, OLD, _plan(OLD), "tenant.yaml:3:1: bad",
     "Synced", "Healthy", "ReconciliationSucceeded", "the appliance matches"),
]


@pytest.mark.parametrize(("stored", "age", "revision", "plan", "error", "sync", "health",
                          "reason", "message"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_status_as_read(stored, age, revision, plan, error, sync, health, reason,
                        message) -> None:
    status = status_as_read(stored, ReadInputs(
        now=NOW, heartbeat_interval=timedelta(seconds=30), stored_at=STORED_AT,
        heartbeat_received_at=None if age is None else NOW - timedelta(seconds=age),
        revision=revision, plan=plan, source_error=error))
    ready = status.condition("Ready")
    assert (status.sync, status.health, ready.reason if ready else None) == (
        sync, health, reason)
    assert ready is not None and ready.message.startswith(message), ready.message
    source = status.condition("SourceValid")
    assert (source.message if source else None) == error


def test_a_stored_source_error_goes_once_the_head_validates() -> None:
    stored = _stored().model_copy(update={"conditions": (*_stored().conditions, Condition(
        type="SourceValid", status="False", reason="ValidationFailed", message="x:1:1: bad",
        last_transition=STORED_AT))})
    status = status_as_read(stored, ReadInputs(
        now=NOW, heartbeat_interval=timedelta(seconds=30), stored_at=STORED_AT,
        heartbeat_received_at=NOW - timedelta(seconds=25), revision=OLD, plan=_plan(OLD)))
    assert [c.type for c in status.conditions] == ["Ready"]
