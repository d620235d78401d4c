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
    otherwise                                                           -> ``decide``
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


def choose(*, plan: Plan, policy: Policies, applied_revision: str | None, manual: bool,
           dry_run: bool, stalled: bool, now: datetime) -> Decision:
    """The decision of a pass for one appliance (the table in the module docstring)."""
    if stalled and not manual:
        return STALLED
    if manual and dry_run:
        return Decision(True, "DryRun", "an operator asked for a dry run")
    return decide(plan=plan, policy=policy, applied_revision=applied_revision, manual=manual,
                  now=now)
