"""Whether policy lets a plan run now: pure, like the rest of planning.

A plan needs a run when it is not empty. Which policy governs it depends on
why it is not empty: a new revision of main (the appliance was last applied
at another commit) needs ``auto_sync``; drift made on the box while it was
already at the desired revision needs ``self_heal``. A manual sync by an
operator overrides both and the maintenance windows. Outside every
maintenance window (when the tenant lists any), automatic runs wait.

``choose`` is the reconciler's whole decision for one appliance in a pass:
    stalled (the same failure ``max_failures`` times) and no manual sync -> wait, Stalled
    a manual dry-run request                                            -> run, DryRun
    a plan from a heartbeat awaiting confirmation, no manual sync       -> wait,
                                                                AwaitingConfirmation
    otherwise                                                           -> ``decide``

One run per change: a heartbeat is **awaiting confirmation**
(``awaiting_confirmation``) when the box reports an older run than the last run
that succeeded on it (the run's last play records its id beside the applied
revision; the agent sends it as ``applied_run``) while desired state is still
at that run's revision: the agent collected it before the run ended, so its
differences are what the run just changed, not drift, and no self-heal run is
decided from it. Run ids are compared, not clocks. The wait is bounded: a
report received ``CONFIRM_WITHIN_INTERVALS`` heartbeat intervals after the run
ended that still names an older run (a box restored from a backup, a marker
that could not be written) counts as evidence again (both times are the
server's: the API's receipt and PostgreSQL's end of the run). An agent that
does not report ``applied_run`` is never awaited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.config import MaintenanceWindow, Policies
from schemas.plan import Plan

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class Decision:
    run: bool
    reason: str
    """CamelCase: NothingToDo, ManualSync, NewRevision, SelfHeal, AutoSyncDisabled,
    SelfHealDisabled, OutsideMaintenanceWindow."""
    message: str = ""


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def window_open(window: MaintenanceWindow, now: datetime) -> bool:
    """True when ``now`` falls inside ``window`` (an end before the start spans midnight)."""
    try:
        local = now.astimezone(ZoneInfo(window.timezone))
    except ZoneInfoNotFoundError:
        local = now
    start, end, minute = _minutes(window.start), _minutes(window.end), local.hour * 60 + local.minute
    today = _DAYS[local.weekday()]
    if start <= end:
        return today in window.days and start <= minute < end
    yesterday = _DAYS[(local - timedelta(days=1)).weekday()]
    return (today in window.days and minute >= start) or (yesterday in window.days and minute < end)


def decide(*, plan: Plan, policy: Policies, applied_revision: str | None, manual: bool,
           now: datetime) -> Decision:
    """Should ``plan`` run now? See the module docstring."""
    if plan.empty:
        return Decision(False, "NothingToDo")
    if manual:
        return Decision(True, "ManualSync", "an operator asked for a sync")
    new_revision = applied_revision != plan.revision
    if new_revision and not policy.auto_sync:
        return Decision(False, "AutoSyncDisabled",
                        f"revision {plan.revision[:12]} is waiting for a manual sync (auto_sync off)")
    if not new_revision and not policy.self_heal:
        return Decision(False, "SelfHealDisabled",
                        f"drift on the appliance is reported, not undone (self_heal off): "
                        f"{plan.summary()}")
    if policy.maintenance_windows and not any(window_open(w, now)
                                              for w in policy.maintenance_windows):
        return Decision(False, "OutsideMaintenanceWindow",
                        "changes wait for the next maintenance window")
    return Decision(True, "NewRevision" if new_revision else "SelfHeal")


STALLED = Decision(False, "Stalled", "waiting for a new revision or a manual sync")

CONFIRM_WITHIN_INTERVALS = 2
"""Heartbeat intervals after a run ends during which a report naming an older run is
taken as collected before the run ended (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class AppliedRun:
    """The last run that succeeded on an appliance (not a dry run)."""

    id: int
    revision: str
    finished_at: datetime


def awaiting_confirmation(*, applied: AppliedRun | None, reported_run: int | None,
                          received_at: datetime | None, revision: str,
                          heartbeat_interval: timedelta) -> bool:
    """True when the latest heartbeat predates ``applied`` (the rule in the docstring)."""
    if applied is None or reported_run is None or received_at is None:
        return False
    return (reported_run < applied.id and applied.revision == revision
            and received_at < applied.finished_at
            + heartbeat_interval * CONFIRM_WITHIN_INTERVALS)


def choose(*, plan: Plan, policy: Policies, applied_revision: str | None, manual: bool,
           dry_run: bool, stalled: bool, now: datetime,
           awaiting: AppliedRun | None = None) -> Decision:
    """The decision of a pass for one appliance (the table in the module docstring).

    ``awaiting``: the run the latest heartbeat has not caught up with, if it is
    awaiting confirmation."""
    if stalled and not manual:
        return STALLED
    if manual and dry_run:
        return Decision(True, "DryRun", "an operator asked for a dry run")
    if awaiting is not None and not manual and not plan.empty:
        return Decision(False, "AwaitingConfirmation",
                        f"run {awaiting.id} applied revision {awaiting.revision[:12]}; "
                        "waiting for a heartbeat collected after it")
    return decide(plan=plan, policy=policy, applied_revision=applied_revision, manual=manual,
                  now=now)
