"""An appliance's status from what is known about it: pure, so every transition is a table test.

``status_after(inputs, previous=...)`` takes a snapshot (``StatusInputs``: the
latest heartbeat and the plan of its observed state against desired, the last
run, the failure count from the queue, the heartbeat interval, ``now``) and
returns the ``ApplianceStatus``. ``previous`` only keeps each condition's
``last_transition`` while its status stays the same. The worker computes it in
a ``finally`` after every step, so status is always current.

Sync:
    no heartbeat -> Unknown; heartbeat plan in sync -> Synced; else OutOfSync
    (unmanaged extras do not count, managed ones awaiting prune do).
Health, first rule that holds:
    1. no heartbeat, or none for ``MISSING_AFTER_INTERVALS`` intervals -> Missing
    2. a run is going                                          -> Progressing
    3. a heartbeat after the last run shows no difference      -> Healthy
    4. ``failure_count >= max_failures`` (stalled: waits for a new revision
       or a manual sync)                                       -> Degraded, Stalled
    5. the last run failed                                     -> Degraded
       the last run was interrupted (its key is re-queued)     -> Progressing
    6. the last run succeeded, no heartbeat since it ended     -> Progressing
       a later heartbeat still shows differences the run was
       meant to fix                                            -> Degraded, the difference
                                                                  in the message
    7. otherwise (new drift, or never run)                     -> Healthy (OutOfSync if it
                                                                  differs)
A revision of main that failed validation adds ``SourceValid=False`` with the
error; the appliance keeps its last good ``desired_revision``.

"After the last run" (``heartbeat_after_run``): the heartbeat names that run or a
later one, or it was received after the run ended and is not stale (collected
before the last successful run ended: ``policy.awaiting_confirmation``).

Applied revision (``applied_after``), before the status is computed:
    a heartbeat in sync, after the last run (or while a run is
    going, or with no run ever)                -> the desired revision: the box is
                                                  as that revision wants it, whether a
                                                  run took it there or the change did
                                                  not touch it
    otherwise                                  -> what the last successful run applied
Message (``with_decision``), after: a plan with items that policy did not let
run (outside the maintenance window, auto-sync off...) appends the decision's
message to the status message and to the Ready condition (whose reason becomes
the decision's, e.g. ``AutoSyncDisabled``: "revision … is waiting for a manual
sync (auto_sync off)"), except when the appliance is stalled (its Stalled
condition says so).

A run going (``RunSummary.outcome == "running"``) is written when its run row
is created, so ``Progressing`` / ``RunInProgress`` naming the run shows while
Ansible works, not only after.

As read (``status_as_read``): the stored status is what the last pass wrote;
when it is read (the API), what is known since is applied on top, first rule
that holds in each numbered group (the Missing rule is applied after the sync rule):
    1. no heartbeat, or none for ``MISSING_AFTER_INTERVALS``
       intervals (now, not when the pass ran)          -> Missing, Ready False
       stored Missing but a heartbeat is fresh now      -> Progressing, Ready Unknown
                                                           ``HeartbeatResumed``
    2. a heartbeat newer than the stored status, or a
       revision of main newer than the stored desired
       one: the plan of that heartbeat at that revision
       (the heartbeat trigger's plan) decides sync:
         empty                                          -> Synced
         items, revision not the stored one             -> OutOfSync, Ready False
                                                           ``RevisionPending`` naming it
         items                                          -> OutOfSync, Ready False
                                                           ``DriftDetected`` with the drift
       health stays as stored (a run going stays ``Progressing``, Ready
       and Reconciling keep ``RunInProgress``; the drift goes in the message)
    3. the head of main is invalid                      -> ``SourceValid=False`` with
                                                           file:line:col; a stored
                                                           ``SourceValid`` goes once the
                                                           head validates again
The status message is the Ready message, then the others' messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from engine.planning.policy import Decision
from schemas.plan import Plan
from schemas.status import (
    MISSING_AFTER_INTERVALS,
    ApplianceStatus,
    Condition,
    ConditionType,
    HealthStatus,
    SyncStatus,
    transition_time,
)


@dataclass(frozen=True, slots=True)
class HeartbeatSummary:
    """The latest heartbeat: when it arrived and the plan of its observed state."""

    received_at: datetime
    plan: Plan
    reported_run: int | None = None
    """The run the box says last converged it (``Heartbeat.applied_run``)."""
    stale: bool = False
    """Collected before the last run that succeeded there ended
    (``policy.awaiting_confirmation``): no evidence about that run either way."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """The latest run of the appliance and the plan it executed."""

    outcome: Literal["running", "succeeded", "failed", "interrupted"]
    revision: str
    plan: Plan
    finished_at: datetime | None = None
    error: str = ""
    run_id: int | None = None


def heartbeat_after_run(heartbeat: HeartbeatSummary, run: RunSummary | None) -> bool:
    """Whether ``heartbeat`` tells about the box after ``run``: it names that run or a
    later one (a run's own last report arrives before its row is finished), or it
    arrived after the run ended and is not known to predate it."""
    if run is None:
        return True
    if heartbeat.reported_run is not None and run.run_id is not None \
            and heartbeat.reported_run >= run.run_id:
        return True
    return (not heartbeat.stale and run.finished_at is not None
            and heartbeat.received_at >= run.finished_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusInputs:
    now: datetime
    desired_revision: str | None
    """Last valid revision of main for this appliance."""
    applied_revision: str | None = None
    """Revision of the last run that succeeded (or of the last empty plan)."""
    heartbeat: HeartbeatSummary | None = None
    heartbeat_interval: timedelta
    """``Settings.heartbeat_interval``: Missing after ``MISSING_AFTER_INTERVALS`` of them."""
    last_run: RunSummary | None = None
    failure_count: int = 0
    max_failures: int = 3
    config_error: str | None = None
    """Why the newest revision of main is not applied, if it failed validation."""


def applied_after(*, applied_revision: str | None, desired_revision: str,
                  heartbeat: HeartbeatSummary | None, last_run: RunSummary | None
                  ) -> str | None:
    """The revision the appliance is at, as far as Hearth can tell (rule in the docstring)."""
    if heartbeat is not None and heartbeat.plan.in_sync and (
            last_run is None or last_run.outcome == "running"
            or heartbeat_after_run(heartbeat, last_run)):
        return desired_revision
    return applied_revision


def with_decision(status: ApplianceStatus, *, plan: Plan, decision: Decision | None
                  ) -> ApplianceStatus:
    """``status`` with why a pending plan did not run appended to its message."""
    if decision is None or decision.run or plan.empty or decision.reason == "Stalled":
        return status
    conditions = tuple(
        c.model_copy(update={"reason": decision.reason,
                             "message": f"{c.message}; {decision.message}".strip("; ")})
        if c.type == "Ready" and c.status != "True" else c for c in status.conditions)
    return status.model_copy(update={
        "conditions": conditions,
        "message": f"{status.message}; {decision.message}".strip("; ")})


@dataclass(frozen=True, slots=True)
class _Verdict:
    health: HealthStatus
    reason: str
    message: str


def _health(inputs: StatusInputs) -> _Verdict:
    heartbeat, run, now = inputs.heartbeat, inputs.last_run, inputs.now
    if heartbeat is None:
        return _Verdict(HealthStatus.MISSING, "NoHeartbeat", "no heartbeat received yet")
    age = now - heartbeat.received_at
    if age > inputs.heartbeat_interval * MISSING_AFTER_INTERVALS:
        return _Verdict(HealthStatus.MISSING, "HeartbeatMissing",
                        f"no heartbeat for {int(age.total_seconds())} s "
                        f"(last at {heartbeat.received_at.isoformat()})")
    if run is not None and run.outcome == "running":
        named = f"run {run.run_id} " if run.run_id is not None else ""
        return _Verdict(HealthStatus.PROGRESSING, "RunInProgress",
                        f"{named}applying revision {run.revision[:12]}")
    after_run = heartbeat_after_run(heartbeat, run)
    if after_run and heartbeat.plan.in_sync:
        return _Verdict(HealthStatus.HEALTHY, "ReconciliationSucceeded",
                        "the appliance matches desired state")
    if inputs.failure_count >= inputs.max_failures:
        error = run.error if run is not None else ""
        return _Verdict(HealthStatus.DEGRADED, "RetriesExhausted",
                        f"failed {inputs.failure_count} times, waiting for a new revision or "
                        f"a manual sync: {error}".rstrip(": "))
    if run is not None and run.outcome == "failed":
        return _Verdict(HealthStatus.DEGRADED, "RunFailed",
                        f"run failed (attempt {max(inputs.failure_count, 1)} of "
                        f"{inputs.max_failures}): {run.error}".rstrip(": "))
    if run is not None and run.outcome == "interrupted":
        return _Verdict(HealthStatus.PROGRESSING, "RunInterrupted",
                        "the last run was interrupted; it is queued again")
    if run is not None and not after_run:
        return _Verdict(HealthStatus.PROGRESSING, "AwaitingHeartbeat",
                        f"revision {run.revision[:12]} applied; waiting for a heartbeat to "
                        "confirm")
    if run is not None:
        meant = run.plan.items  # DiffItems hold JSON values: compared, not hashed
        leftover = [item for item in heartbeat.plan.items if item in meant]
        if leftover:
            shown = "; ".join(item.describe() for item in leftover[:5])
            more = f" and {len(leftover) - 5} more" if len(leftover) > 5 else ""
            return _Verdict(HealthStatus.DEGRADED, "StillDiffers",
                            f"the run succeeded but the appliance still differs: {shown}{more}")
    return _Verdict(HealthStatus.HEALTHY, "DriftDetected",
                    f"the appliance differs from desired state: {heartbeat.plan.summary()}")


def status_after(inputs: StatusInputs, *, previous: ApplianceStatus | None = None
                 ) -> ApplianceStatus:
    """The status for ``inputs``; see the module docstring for the rules."""
    heartbeat = inputs.heartbeat
    if heartbeat is None:
        sync = SyncStatus.UNKNOWN
    elif heartbeat.plan.in_sync:
        sync = SyncStatus.SYNCED
    else:
        sync = SyncStatus.OUT_OF_SYNC
    verdict = _health(inputs)

    def condition(type_: ConditionType, status: str, reason: str, message: str) -> Condition:
        before = previous.condition(type_) if previous is not None else None
        return Condition(
            type=type_, status=status, reason=reason, message=message,  # type: ignore[arg-type]
            last_transition=transition_time(before, status=status, now=inputs.now),
            desired_revision=inputs.desired_revision,
            applied_revision=inputs.applied_revision,
        )

    ready = sync is SyncStatus.SYNCED and verdict.health is HealthStatus.HEALTHY
    if ready:
        ready_status = "True"
    elif verdict.health is HealthStatus.PROGRESSING:
        ready_status = "Unknown"
    else:
        ready_status = "False"
    conditions = [condition("Ready", ready_status, verdict.reason, verdict.message)]
    if verdict.health is HealthStatus.PROGRESSING:
        conditions.append(condition("Reconciling", "True", verdict.reason, verdict.message))
    if verdict.reason == "RetriesExhausted":
        conditions.append(condition("Stalled", "True", verdict.reason, verdict.message))
    message = verdict.message
    if inputs.config_error:
        conditions.append(condition("SourceValid", "False", "ValidationFailed",
                                    inputs.config_error))
        kept = (inputs.desired_revision or "none")[:12]
        message = f"{message}; the newest revision of main is invalid, keeping {kept}"
    return ApplianceStatus(
        sync=sync,
        health=verdict.health,
        conditions=tuple(conditions),
        desired_revision=inputs.desired_revision,
        applied_revision=inputs.applied_revision,
        message=message,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadInputs:
    """What is known when a stored status is read (the API), beyond the status itself."""

    now: datetime
    heartbeat_interval: timedelta
    stored_at: datetime
    """When the last pass wrote the stored status."""
    heartbeat_received_at: datetime | None
    revision: str | None
    """The revision that applies now: the head of main when it validates, else the last
    good one."""
    plan: Plan | None = None
    """The latest heartbeat's plan at ``revision`` (the heartbeat trigger's); None when
    there is no heartbeat or the appliance is not at that revision."""
    source_error: str | None = None
    """Why the head of main is not applied (file:line:col), if it is invalid."""


def status_as_read(stored: ApplianceStatus, inputs: ReadInputs) -> ApplianceStatus:
    """``stored`` with what is known since it was written; rules in the module docstring."""
    now = inputs.now
    conditions = {c.type: c for c in stored.conditions}
    sync, health = stored.sync, stored.health
    desired = stored.desired_revision

    def put(type_: ConditionType, status: str, reason: str, message: str) -> None:
        conditions[type_] = Condition(
            type=type_, status=status, reason=reason, message=message,  # type: ignore[arg-type]
            last_transition=transition_time(conditions.get(type_), status=status, now=now),
            desired_revision=desired, applied_revision=stored.applied_revision)

    received = inputs.heartbeat_received_at
    newer_revision = inputs.revision is not None and inputs.revision != stored.desired_revision
    fresher = received is not None and received > inputs.stored_at
    if inputs.plan is not None and (fresher or newer_revision):
        plan = inputs.plan
        if plan.in_sync:
            sync = SyncStatus.SYNCED
        else:
            sync = SyncStatus.OUT_OF_SYNC
            if newer_revision:
                desired = inputs.revision
                reason = "RevisionPending"
                message = (f"revision {plan.revision[:12]} of main is not applied yet: "
                           f"{plan.summary()}")
            else:
                reason = "DriftDetected"
                message = f"the appliance differs from desired state: {plan.summary()}"
            if health is HealthStatus.PROGRESSING:
                ready = conditions.get("Ready")
                if ready is not None:
                    put("Ready", ready.status, ready.reason, f"{ready.message}; {message}")
            else:
                put("Ready", "False", reason, message)
    if received is None or now - received > inputs.heartbeat_interval * MISSING_AFTER_INTERVALS:
        health = HealthStatus.MISSING
        if received is None:
            put("Ready", "False", "NoHeartbeat", "no heartbeat received yet")
        else:
            age = int((now - received).total_seconds())
            put("Ready", "False", "HeartbeatMissing",
                f"no heartbeat for {age} s (last at {received.isoformat()})")
        conditions.pop("Reconciling", None)
    elif health is HealthStatus.MISSING:
        health = HealthStatus.PROGRESSING
        put("Ready", "Unknown", "HeartbeatResumed",
            f"heartbeats resumed at {received.isoformat()}; waiting for the next pass")
    if inputs.source_error:
        put("SourceValid", "False", "ValidationFailed", inputs.source_error)
    else:
        conditions.pop("SourceValid", None)
    order = ("Ready", "Reconciling", "Stalled", "SourceValid")
    ordered = tuple(conditions[t] for t in order if t in conditions)
    messages = list(dict.fromkeys(c.message for c in ordered if c.message))
    return ApplianceStatus(
        sync=sync, health=health, conditions=ordered, desired_revision=desired,
        applied_revision=stored.applied_revision, message="; ".join(messages))
