"""The planner: ``(desired, observed, inventory, policy) -> Plan``, and the next inventory.

``build_plan`` is the pure function of DESIGN.md invariant 5. It normalises both
sides (``normalize.py``), diffs each domain the desired appliance runs
(``diff.py``) and returns a canonical ``Plan``. A domain the YAML leaves out
(``None``) is not managed: no items, no extras, and its inventory is kept as
it was so Hearth still knows what it created there. ``observed=None`` (no
heartbeat yet) plans everything as missing: Ansible is idempotent, so the first
run simply converges the box.

Callers that plan the same desired appliance often (the periodic resync, a
heartbeat every minute) compute ``normalize_desired`` once per (appliance,
revision) and pass it as ``desired_canonical``; the benchmark does this.

``next_inventory`` implements "only remove what we put there": after a run,
Hearth manages what the YAML lists, plus whatever it created and could not or
may not remove yet: removals that failed go back in (Flux ``pruneSurvivors``)
and so do managed extras left because pruning is off, so that turning prune
on later still removes them. Keys of objects no longer on the box drop out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from engine.planning.diff import diff_domain
from engine.planning.normalize import CanonicalState, normalize_desired, normalize_observed
from schemas.config import DesiredAppliance, Policies
from schemas.heartbeat import ObservedState
from schemas.plan import DOMAIN_ORDER, DiffItem, Inventory, ObjectKey, Plan


def appliance_key(desired: DesiredAppliance) -> str:
    """``tenant/appliance``: the key of queues, locks and plans."""
    return f"{desired.tenant}/{desired.name}"


def build_plan(
    *,
    desired: DesiredAppliance,
    observed: ObservedState | None,
    inventory: Inventory,
    policy: Policies,
    revision: str,
    now: datetime,
    desired_canonical: CanonicalState | None = None,
) -> Plan:
    """What must change on the appliance for it to match ``desired`` at ``revision``."""
    want = desired_canonical if desired_canonical is not None else normalize_desired(desired)
    have = normalize_observed(observed)
    items: list[DiffItem] = []
    extras: list[DiffItem] = []
    for domain in DOMAIN_ORDER:
        desired_domain = want.get(domain)
        if desired_domain is None:
            continue
        domain_items, domain_extras = diff_domain(
            domain, desired_domain, have[domain],
            managed=inventory.keys(domain), prune=policy.prune, now=now,
        )
        items += domain_items
        extras += domain_extras
    return Plan.of(appliance=appliance_key(desired), revision=revision, items=items,
                   extras=extras)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """What the executor says about a plan it ran: which domains (playbooks) failed.

    ``failed_keys`` narrows a failure to objects when the executor knows them.
    """

    failed_domains: frozenset[str] = frozenset()
    failed_keys: frozenset[ObjectKey] = frozenset()

    def removal_failed(self, item: DiffItem) -> bool:
        return item.domain in self.failed_domains or item.path in self.failed_keys


def next_inventory(
    previous: Inventory,
    desired: DesiredAppliance,
    result: ApplyResult | None,
    *,
    plan: Plan,
    desired_canonical: CanonicalState | None = None,
) -> Inventory:
    """The inventory after running ``plan``; ``result`` None means it was not run, so every
    removal it held survives."""
    want = desired_canonical if desired_canonical is not None else normalize_desired(desired)
    managed: dict[str, set[ObjectKey]] = {}
    for domain in DOMAIN_ORDER:
        canonical = want.get(domain)
        if canonical is None:
            managed[domain] = set(previous.keys(domain))
        else:
            managed[domain] = set(canonical.objects)
    for item in plan.items:
        if item.operation == "remove" and item.reason == "pruned" and (
            result is None or result.removal_failed(item)
        ):
            managed[item.domain].add(item.path)
    for extra in plan.pending_prune:
        managed[extra.domain].add(extra.path)
    return Inventory.of(managed)
