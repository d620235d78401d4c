"""A pull request's checks: validation of its head, and a plan preview in domain terms.

``compute_checks`` is pure given its inputs (a repo to read, the observed
state of the tenant's appliances, the clock) and returns ``schemas.pulls.
Checks``. Validation is the reader's own (every issue with file:line:col;
symlinks, submodules, huge blobs and YAML bombs fail here fast). The plan
preview covers the appliances whose desired state differs between ``main``
and the head (``DesiredSnapshot.changed_appliances``): for each, the plan of
its last observed state against the head, described for people ("adds user
maria to group reception on front-office"), with counts and when the
tenant's policy would let it apply.

``plan_preview`` is the ONE place a revision becomes a plan here, and it goes
through ``engine.reconcile.source.plan_at``, the function the reconciler, the
heartbeat trigger and the diff route use (``DesiredSource.plan``): the same
inputs give the same plan everywhere. The observed states and inventories of
the whole fleet are read in one query (``engine.db.pulls``) rather than one
``preview_plan`` call per appliance, which keeps a 1,000-appliance preview fast.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pygit2

from engine.errors import ConfigError
from engine.planning.policy import window_open
from engine.reconcile.source import plan_at
from engine.repos.reader import DesiredSnapshot, SnapshotReader
from schemas.config import Policies
from schemas.heartbeat import ObservedState
from schemas.plan import DiffItem, Inventory, Plan
from schemas.pulls import AppliancePreview, Checks, Issue, PlanPreviewCheck, ValidationCheck

_NOUNS = {"users": "user", "groups": "group", "shares": "share", "zones": "DNS zone",
          "records": "DNS record", "certificates": "certificate", "domains": "mail domain",
          "mailboxes": "mailbox", "aliases": "mail alias"}


def plan_preview(*, snapshot: DesiredSnapshot, name: str, observed: ObservedState | None,
                 inventory: Inventory, now: datetime) -> Plan:
    """What syncing appliance ``name`` to ``snapshot`` would do from its last observed state."""
    return plan_at(desired=snapshot.desired(name), revision=snapshot.commit,
                   observed=observed, inventory=inventory, now=now)


def describe(item: DiffItem) -> str:
    """One change in the words of the domain: ``adds user maria to group reception``."""
    path = item.path
    if item.operation in ("add", "remove") and len(path) >= 2:
        noun = _NOUNS.get(path[-2], path[-2])
        verb = {"add": "adds", "remove": "removes"}[item.operation]
        if noun == "certificate" and item.operation == "add":
            verb = "issues"
        return f"{verb} {noun} {path[-1]}"
    if item.operation == "modify" and len(path) >= 3:
        noun = _NOUNS.get(path[-3], path[-3])
        owner, field = path[-2], path[-1]
        if item.reason == "secret changed":
            return f"changes the {field.replace('_', ' ')} of {noun} {owner}"
        if isinstance(item.before, list) and isinstance(item.after, list):
            added = [v for v in item.after if v not in item.before]
            removed = [v for v in item.before if v not in item.after]
            target = _NOUNS.get(field, field.rstrip("s")) if field == "groups" else field
            parts = [f"adds {noun} {owner} to {target} {v}" for v in added]
            parts += [f"removes {noun} {owner} from {target} {v}" for v in removed]
            if parts:
                return "; ".join(parts)
        if item.reason == "renewal due":
            return f"renews {noun} {owner}"
        return f"changes {field.replace('_', ' ')} of {noun} {owner} from {item.before!r} " \
               f"to {item.after!r}"
    if item.operation == "modify" and len(path) == 1:
        return f"changes {item.domain} setting {path[0]} from {item.before!r} to {item.after!r}"
    return item.describe()


def when_applied(policies: Policies, now: datetime) -> str:
    if not policies.auto_sync:
        return "waits for an operator's sync (auto_sync is off)"
    windows = policies.maintenance_windows
    if not windows:
        return "at once after the merge (auto_sync, no maintenance window)"
    spans = ", ".join(f"{'/'.join(w.days)} {w.start}-{w.end} {w.timezone}" for w in windows)
    if any(window_open(w, now) for w in windows):
        return f"at once after the merge (a maintenance window is open: {spans})"
    return f"in the next maintenance window ({spans})"


def compute_checks(repo: pygit2.Repository, reader: SnapshotReader, *, tenant: str, head: str,
                   main: str | None, fleet: Mapping[str, Mapping[str, Any]], now: datetime
                   ) -> Checks:
    """The checks of a pull request at ``head`` against ``main``.

    ``fleet``: registered appliance name -> {"observed": JSON or None, "inventory": JSON}.
    """
    started = time.perf_counter()
    try:
        snapshot = reader.load(repo, head, tenant=tenant)
    except ConfigError as exc:
        issues = [Issue(**i.as_dict()) for i in exc.issues]  # type: ignore[arg-type]
        return Checks(head=head, status="failed",
                      validation=ValidationCheck(status="failed", issues=issues),
                      plan_preview=PlanPreviewCheck(status="failed"),
                      started_at=now, finished_at=now,
                      duration_ms=round((time.perf_counter() - started) * 1000, 1))
    previous = None
    if main is not None:
        try:
            previous = reader.load(repo, main, tenant=tenant)
        except ConfigError:
            previous = None  # an invalid main: every appliance is affected
    affected = snapshot.changed_appliances(previous)
    previews = []
    window = when_applied(snapshot.config.tenant.spec.policies, now)
    for name in affected:
        found = fleet.get(name)
        observed = None
        inventory = Inventory()
        if found is not None:
            if found.get("observed") is not None:
                observed = ObservedState.model_validate(found["observed"])
            inventory = Inventory.model_validate(found.get("inventory") or {})
        plan = plan_preview(snapshot=snapshot, name=name, observed=observed, inventory=inventory,
                            now=now)
        counts = {"add": 0, "modify": 0, "remove": 0}
        for item in plan.items:
            counts[item.operation] += 1
        changes = [f"{describe(item)} on {name}" for item in plan.items]
        previews.append(AppliancePreview(appliance=name, registered=found is not None,
                                         changes=changes, counts=counts, window=window))
    removed = snapshot.removed_appliances(previous)
    preview = PlanPreviewCheck(status="passed", appliances=previews, removed_appliances=removed,
                               unaffected=len(snapshot.appliance_names()) - len(affected))
    return Checks(head=head, status="passed", validation=ValidationCheck(status="passed"),
                  plan_preview=preview, started_at=now, finished_at=now,
                  duration_ms=round((time.perf_counter() - started) * 1000, 1))
