"""An appliance's status as operators of GitOps tools expect to read it.

Two summaries and a set of conditions, as Argo CD and Flux show them:

- ``sync``: ``Synced`` (the last heartbeat matches desired state),
  ``OutOfSync`` (it differs), ``Unknown`` (no heartbeat yet);
- ``health``: ``Healthy``, ``Progressing`` (a run is going or its result is not
  confirmed by a heartbeat yet), ``Degraded`` (a run failed, or succeeded and
  the box still differs), ``Missing`` (no heartbeat for three intervals);
- ``conditions``: ``Ready``, ``Reconciling``, ``Stalled`` and ``SourceValid``,
  each with a CamelCase reason, a message, the time its status last changed
  and the desired and applied revisions it was computed against.

A converged appliance is Synced, Healthy, with ``applied_revision ==
desired_revision`` (Flux ``isReconcileSuccess``): ``ApplianceStatus.converged``.
The values are computed by the pure ``engine.planning.health.status_after``.

``MISSING_AFTER_INTERVALS`` is the one Missing rule, read by the planner's
status rules and the API's heartbeat-only view alike; the interval itself is
``Settings.heartbeat_interval``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MISSING_AFTER_INTERVALS = 3
"""An appliance whose last heartbeat is older than this many heartbeat intervals is Missing."""


class SyncStatus(StrEnum):
    SYNCED = "Synced"
    OUT_OF_SYNC = "OutOfSync"
    UNKNOWN = "Unknown"


class HealthStatus(StrEnum):
    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    MISSING = "Missing"


ConditionType = Literal["Ready", "Reconciling", "Stalled", "SourceValid"]
Reason = Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9]*$", max_length=64)]
"""CamelCase, machine-readable: ``ReconciliationSucceeded``, ``HeartbeatMissing``..."""


class Condition(BaseModel):
    """One observation about the appliance; ``last_transition`` moves only when ``status`` does."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: ConditionType
    status: Literal["True", "False", "Unknown"]
    reason: Reason
    message: str = ""
    last_transition: AwareDatetime
    desired_revision: str | None = None
    applied_revision: str | None = None


class ApplianceStatus(BaseModel):
    """Sync, health and conditions of one appliance at one moment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sync: SyncStatus
    health: HealthStatus
    conditions: tuple[Condition, ...] = ()
    desired_revision: str | None = None
    applied_revision: str | None = None
    message: str = ""

    def condition(self, type_: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def converged(self) -> bool:
        return (
            self.sync is SyncStatus.SYNCED
            and self.health is HealthStatus.HEALTHY
            and self.desired_revision is not None
            and self.applied_revision == self.desired_revision
        )


def transition_time(previous: Condition | None, *, status: str, now: datetime) -> datetime:
    """Keep the earlier transition time while a condition's status stays the same."""
    if previous is not None and previous.status == status:
        return previous.last_transition
    return now
