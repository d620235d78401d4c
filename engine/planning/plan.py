"""The planner: ``(desired, observed, inventory, policy) -> Plan``, and the next inventory.

``build_plan`` is the pure function of docs/architecture.md, invariant 5. It normalises both
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

Secrets (a user's password, a Samba password) are never reported by heartbeats,
so they cannot be diffed against the box. Instead the inventory remembers a
fingerprint of the vault value last applied (``Inventory.secrets``); a vault value
in git that differs is a ``modify`` item with reason ``secret changed`` whose
before and after are fingerprints. A password changed by hand on the box is
therefore not seen (nor undone until the next run); one changed in git is.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from datetime import datetime

from engine.planning.diff import diff_domain
from engine.planning.normalize import CanonicalState, normalize_desired, normalize_observed
from schemas.accounts import samba_account_names
from schemas.config import DesiredAppliance, Policies
from schemas.heartbeat import ObservedState
from schemas.plan import DOMAIN_ORDER, DiffItem, Domain, Inventory, ObjectKey, Plan


def appliance_key(desired: DesiredAppliance) -> str:
    """``tenant/appliance``: the key of queues, locks and plans."""
    return f"{desired.tenant}/{desired.name}"


SECRET_CHANGED = "secret changed"  # noqa: S105 (a reason, not a secret)


@functools.lru_cache(maxsize=65536)
def secret_fingerprint(ciphertext: str) -> str:
    """Names a vault value without revealing it: a digest of the ciphertext, which is in
    git anyway. Re-encrypting the same password gives a new fingerprint (one extra,
    idempotent run)."""
    return hashlib.sha256(ciphertext.strip().encode()).hexdigest()[:24]


@dataclass(frozen=True, slots=True)
class DesiredSecret:
    domain: Domain
    path: ObjectKey
    fingerprint: str

    @property
    def key(self) -> str:
        """The ``Inventory.secrets`` key, e.g. ``users/users/alice/password``."""
        return "/".join((self.domain, *self.path))


def desired_secrets(desired: DesiredAppliance) -> list[DesiredSecret]:
    """The vault values this appliance's run applies, each where the plan names it."""
    out = [DesiredSecret("users", ("users", u.name, "password"), secret_fingerprint(u.password))
           for u in desired.users.users if u.state == "present" and u.password]
    if desired.samba is None or not any(u.samba_password for u in desired.users.users):
        return out
    by_name = {u.name: u for u in desired.users.users}
    for name in samba_account_names(desired):
        secret = by_name[name].samba_password
        if secret:
            out.append(DesiredSecret("samba", ("accounts", name, "password"),
                                     secret_fingerprint(secret)))
    return out


def _secret_items(desired: DesiredAppliance, inventory: Inventory) -> list[DiffItem]:
    items = []
    for secret in desired_secrets(desired):
        applied = inventory.secrets.get(secret.key)
        if applied != secret.fingerprint:
            items.append(DiffItem(domain=secret.domain, operation="modify", path=secret.path,
                                  before=applied, after=secret.fingerprint,
                                  reason=SECRET_CHANGED))
    return items


def build_plan(
    *,
    desired: DesiredAppliance,
    observed: ObservedState | None,
    inventory: Inventory,
    policy: Policies,
    revision: str,
    now: datetime,
    desired_canonical: CanonicalState | None = None,
    secrets: bool = True,
) -> Plan:
    """What must change on the appliance for it to match ``desired`` at ``revision``.

    ``secrets=False`` leaves out pending vault values (for a caller that has no stored
    inventory, such as the heartbeat trigger: a heartbeat cannot tell a password anyway).
    """
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
    if secrets:
        items += _secret_items(desired, inventory)
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
    return Inventory.of(managed, _next_secrets(previous, desired, result))


def _next_secrets(previous: Inventory, desired: DesiredAppliance,
                  result: ApplyResult | None) -> dict[str, str]:
    """After a run, the fingerprints it applied; a domain that failed (or a plan that did
    not run) keeps what was applied before."""
    secrets = dict(previous.secrets)
    wanted = desired_secrets(desired)
    wanted_keys = {s.key for s in wanted}
    for key in list(secrets):  # secrets no longer in the YAML are no longer tracked
        if key not in wanted_keys:
            del secrets[key]
    if result is None:
        return secrets
    for secret in wanted:
        if secret.domain not in result.failed_domains:
            secrets[secret.key] = secret.fingerprint
    return secrets
