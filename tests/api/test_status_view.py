"""The heartbeat-only status rules, with literal values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.status_view import status_of

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
REV, OLD = "a" * 40, "b" * 40
RUNNING = [{"name": "named", "status": "running"}]


@pytest.mark.parametrize(("row", "sync", "health", "reason"), [
    ({}, "Unknown", "Missing", "NoHeartbeat"),
    ({"received_at": NOW - timedelta(minutes=2), "reported_revision": REV, "services": RUNNING},
     "Synced", "Missing", "HeartbeatMissing"),
    ({"received_at": NOW - timedelta(seconds=10), "reported_revision": REV, "services": RUNNING},
     "Synced", "Healthy", "Converged"),
    ({"received_at": NOW - timedelta(seconds=10), "reported_revision": OLD, "services": RUNNING},
     "OutOfSync", "Healthy", "RevisionBehind"),
    ({"received_at": NOW, "reported_revision": REV,
      "services": [{"name": "smbd", "status": "failed"}, *RUNNING]},
     "Synced", "Degraded", "ServiceFailing"),
], ids=["no-heartbeat", "stale", "converged", "behind", "service-failed"])
def test_heartbeat_only_status(row, sync, health, reason) -> None:
    status = status_of(row, desired_revision=REV, now=NOW)
    assert (status.sync, status.health) == (sync, health)
    assert status.conditions[0].reason == reason


def test_a_reconciler_row_wins() -> None:
    row = {"sync": "OutOfSync", "health": "Progressing", "conditions": [],
           "desired_revision": REV, "applied_revision": OLD,
           "received_at": NOW, "reported_revision": REV, "services": RUNNING}
    status = status_of(row, desired_revision=REV, now=NOW)
    assert (status.sync, status.health, status.applied_revision) == ("OutOfSync", "Progressing",
                                                                     OLD)
