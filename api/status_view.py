"""An appliance's status as the API shows it.

``appliance_view`` shows the ``appliance_status`` row the reconciler writes
after every pass (``row["sync"]`` set) as it reads now: a newer heartbeat or
revision, the heartbeat's age and an invalid head of main are applied on top
(``DesiredSource.read_status``; the rules are ``engine.planning.health``,
``status_as_read``). An appliance no pass has
reached yet (just registered, no worker running) has no such row; its status is
then derived from heartbeats alone:

- no heartbeat yet: sync ``Unknown``, health ``Missing``;
- last heartbeat older than ``MISSING_AFTER_INTERVALS`` heartbeat intervals
  (``Settings.heartbeat_interval``): health ``Missing``;
- else health from the appliance's own service report (``Degraded`` when a
  service failed or stopped, ``Healthy`` otherwise), and sync ``Synced`` when
  the revision the box reports applied is the desired one, ``OutOfSync``
  otherwise. Without the diff engine this cannot see drift inside a revision.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from api.models import ApplianceOut
from engine.reconcile.source import DesiredSource
from engine.settings import DEFAULT_HEARTBEAT_INTERVAL
from schemas.status import (
    MISSING_AFTER_INTERVALS,
    ApplianceStatus,
    Condition,
    HealthStatus,
    SyncStatus,
)


def status_of(row: dict[str, Any], *, desired_revision: str | None, now: datetime,
              heartbeat_interval: timedelta = DEFAULT_HEARTBEAT_INTERVAL) -> ApplianceStatus:
    if row.get("sync"):
        return ApplianceStatus(
            sync=SyncStatus(row["sync"]), health=HealthStatus(row["health"]),
            conditions=tuple(Condition.model_validate(c) for c in row.get("conditions") or ()),
            desired_revision=row.get("desired_revision"),
            applied_revision=row.get("applied_revision"),
        )
    received: datetime | None = row.get("received_at")
    applied = row.get("reported_revision")
    if received is None:
        return _status(SyncStatus.UNKNOWN, HealthStatus.MISSING, "False", "NoHeartbeat",
                       "no heartbeat received yet", now, desired_revision, None)
    sync = SyncStatus.SYNCED if applied and applied == desired_revision else SyncStatus.OUT_OF_SYNC
    missing_after = heartbeat_interval * MISSING_AFTER_INTERVALS
    if now - received > missing_after:
        return _status(sync, HealthStatus.MISSING, "False", "HeartbeatMissing",
                       f"last heartbeat at {received.isoformat()}", received + missing_after,
                       desired_revision, applied)
    failing = [s["name"] for s in row.get("services") or ()
               if s.get("status") in ("failed", "stopped")]
    if failing:
        return _status(sync, HealthStatus.DEGRADED, "False", "ServiceFailing",
                       "not running: " + ", ".join(sorted(failing)), received,
                       desired_revision, applied)
    ready = "True" if sync is SyncStatus.SYNCED else "False"
    reason = "Converged" if ready == "True" else "RevisionBehind"
    return _status(sync, HealthStatus.HEALTHY, ready, reason, "", received,
                   desired_revision, applied)


def _status(sync: SyncStatus, health: HealthStatus, ready: str, reason: str, message: str,
            since: datetime, desired: str | None, applied: str | None) -> ApplianceStatus:
    condition = Condition(type="Ready", status=ready, reason=reason, message=message,  # type: ignore[arg-type]
                          last_transition=since, desired_revision=desired,
                          applied_revision=applied)
    return ApplianceStatus(sync=sync, health=health, conditions=(condition,),
                           desired_revision=desired, applied_revision=applied, message=message)


def appliance_view(row: dict[str, Any], *, source: DesiredSource, desired_revision: str | None,
                   source_error: str | None, now: datetime,
                   heartbeat_interval: timedelta) -> ApplianceOut:
    """The API's view of one appliance from ``engine.db.appliances.status_row``: the stored
    status as it reads now (``DesiredSource.read_status``), else the heartbeat-only one."""
    if row.get("sync"):
        status = source.read_status(row, revision=desired_revision, source_error=source_error,
                                    now=now, heartbeat_interval=heartbeat_interval)
    else:
        status = status_of(row, desired_revision=desired_revision, now=now,
                           heartbeat_interval=heartbeat_interval)
    return ApplianceOut(
        id=row["id"], tenant=row["tenant"], name=row["name"], hostname=row["hostname"],
        address=row["address"],
        status=status,
        last_heartbeat_at=row.get("received_at"), last_sequence=row.get("sequence"),
        agent_version=row.get("agent_version"))
