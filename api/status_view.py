"""An appliance's status as the API shows it, until the reconciler writes real status.

``status_of(row, desired_revision=…, now=…)`` reads the ``appliance_status``
row when the reconciler has written one (``row["sync"]`` set) and otherwise
derives status from heartbeats alone:

- no heartbeat yet: sync ``Unknown``, health ``Missing``;
- last heartbeat older than three intervals: health ``Missing``;
- else health from the appliance's own service report (``Degraded`` when a
  service failed or stopped, ``Healthy`` otherwise), and sync ``Synced`` when
  the revision the box reports applied is the desired one, ``OutOfSync``
  otherwise. Without the diff engine this cannot see drift inside a revision.

It is one pure function so the reconciler engineer can replace the fallback
with ``engine.planning.health`` without touching the routes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from api.models import ApplianceOut
from schemas.status import ApplianceStatus, Condition, HealthStatus, SyncStatus

HEARTBEAT_INTERVAL = timedelta(seconds=30)
MISSING_AFTER = 3 * HEARTBEAT_INTERVAL


def status_of(row: dict[str, Any], *, desired_revision: str | None, now: datetime
              ) -> ApplianceStatus:
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
    if now - received > MISSING_AFTER:
        return _status(sync, HealthStatus.MISSING, "False", "HeartbeatMissing",
                       f"last heartbeat at {received.isoformat()}", received + MISSING_AFTER,
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


def appliance_view(row: dict[str, Any], *, desired_revision: str | None, now: datetime
                   ) -> ApplianceOut:
    """The API's view of one appliance from ``engine.db.appliances.status_row``."""
    return ApplianceOut(
        id=row["id"], tenant=row["tenant"], name=row["name"], hostname=row["hostname"],
        status=status_of(row, desired_revision=desired_revision, now=now),
        last_heartbeat_at=row.get("received_at"), last_sequence=row.get("sequence"),
        agent_version=row.get("agent_version"))
