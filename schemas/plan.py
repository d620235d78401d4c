"""What the planner says must change on one appliance: diff items, the plan, the inventory.

A ``Plan`` is the value the pure planner (``engine.planning``) returns and the
executor, the run records, the API and the CLI consume. It is ordered and
canonical, so two plans that say the same thing are equal and have the same
``hash`` whatever order the YAML or the heartbeat listed things in:

- ``items`` are the changes to make, per domain in apply order (``DOMAIN_ORDER``:
  users, pki, dns, samba, mail), and within a domain adds, then modifies, then
  removes, each sorted by path. Like kopf's ``DiffItem(operation, field, old,
  new)``, each item names its domain, operation, path, before and after and
  why. An add or remove is about a whole object and its ``path`` is the
  object's inventory key, e.g. ``("users", "alice")`` or ``("zones",
  "example.com", "records", "www.example.com. A 192.0.2.1")``; a modify is
  about one field and its path is the object's key plus the field name. A
  domain-wide setting (e.g. ``("relay_host",)``) is only ever modified.
- ``extras`` are objects found on the box that the plan does not remove: ones
  Hearth never created (``managed=False``, reported only, never make the
  appliance OutOfSync) and ones it created but may not prune because the
  ``prune`` policy is off (``managed=True``: the appliance is OutOfSync,
  "requires pruning", as Argo CD says). Both carry reason ``"extra"``.
- ``hash`` is the sha256 of the canonical JSON of ``items`` (not of extras or
  the revision): the same difference has the same hash across revisions and
  runs, which is what failure counting keys on.

``Inventory`` is what Hearth put on an appliance, per domain the set of object
keys (paths as above). Removals come only from it ("only remove what we put
there"; Flux's inventory and ``pruneSurvivors``). It is stored per appliance by
the reconciler and serialises to plain JSON (``model_dump(mode="json")``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Domain = Literal["users", "pki", "dns", "samba", "mail"]
"""The five domains, written once and in apply order (``DOMAIN_ORDER`` reads it)."""
Operation = Literal["add", "modify", "remove"]

DOMAIN_ORDER: tuple[Domain, ...] = get_args(Domain)
"""The order in which domains are applied: accounts first, certificates before the
services that use them."""

OPERATION_ORDER: tuple[Operation, ...] = ("add", "modify", "remove")

ObjectKey = tuple[str, ...]
"""An object's identity inside its domain, e.g. ``("shares", "data")``."""

_DOMAIN_RANK = {domain: rank for rank, domain in enumerate(DOMAIN_ORDER)}
_OPERATION_RANK = {operation: rank for rank, operation in enumerate(OPERATION_ORDER)}


class DiffItem(BaseModel):
    """One change: ``operation`` on ``path`` inside ``domain``, from ``before`` to ``after``.

    ``before`` and ``after`` are JSON values (a canonical object for add and
    remove, a field value for modify); ``None`` where there is nothing.
    ``reason`` is short and stable: ``missing``, ``differs``, ``absent``
    (the YAML says ``state: absent``), ``pruned`` (no longer in the YAML),
    ``renewal due``, ``not running``, ``secret changed`` (a vault value in git differs
    from the one last applied; ``before``/``after`` are then fingerprints, never the
    secret) or ``extra``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    domain: Domain
    operation: Operation
    path: ObjectKey
    before: Any = None
    after: Any = None
    reason: str
    managed: bool = True
    """Hearth created the object (it is in the inventory or the YAML); only for extras
    is this ever False."""

    def sort_key(self) -> tuple[int, int, ObjectKey]:
        return (_DOMAIN_RANK[self.domain], _OPERATION_RANK[self.operation], self.path)

    def describe(self) -> str:
        """One line for people: ``dns modify zones/example.com/valid: False -> True (differs)``."""
        where = "/".join(self.path) or "(domain)"
        if self.operation == "modify":
            change = f"{self.before!r} -> {self.after!r}"
        elif self.operation == "add":
            change = "add"
        else:
            change = "remove" if self.reason != "extra" else "extra on the appliance"
        return f"{self.domain} {self.operation} {where}: {change} ({self.reason})"


def _canonical_json(items: tuple[DiffItem, ...]) -> bytes:
    rows = [item.model_dump(mode="json") for item in items]
    return json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


EMPTY_PLAN_HASH = hashlib.sha256(b"[]").hexdigest()


class Plan(BaseModel):
    """The ordered changes that bring one appliance (``tenant/name``) to ``revision``.

    Build it with ``Plan.of(...)``: items and extras are sorted and the hash
    and ``domains_changed`` are derived, so any two equal plans compare equal.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    appliance: str
    revision: str
    items: tuple[DiffItem, ...] = ()
    extras: tuple[DiffItem, ...] = ()
    hash: str = Field(default=EMPTY_PLAN_HASH, pattern=r"^[0-9a-f]{64}$")
    domains_changed: tuple[Domain, ...] = ()

    @model_validator(mode="after")
    def _check_derived(self) -> Plan:
        expected = tuple(sorted(self.items, key=DiffItem.sort_key))
        if expected != self.items:
            raise ValueError("plan items must be in apply order; build plans with Plan.of")
        if self.hash != plan_hash(self.items):
            raise ValueError("plan hash does not match its items")
        return self

    @classmethod
    def of(
        cls,
        *,
        appliance: str,
        revision: str,
        items: list[DiffItem] | tuple[DiffItem, ...] = (),
        extras: list[DiffItem] | tuple[DiffItem, ...] = (),
    ) -> Plan:
        ordered = tuple(sorted(items, key=DiffItem.sort_key))
        changed = {item.domain for item in ordered}
        # Derived values are right by construction; model_validate still checks them.
        return cls.model_construct(
            appliance=appliance,
            revision=revision,
            items=ordered,
            extras=tuple(sorted(extras, key=DiffItem.sort_key)),
            hash=plan_hash(ordered),
            domains_changed=tuple(d for d in DOMAIN_ORDER if d in changed),
        )

    @property
    def empty(self) -> bool:
        """Nothing to do: no item to apply (extras may still be reported)."""
        return not self.items

    @property
    def pending_prune(self) -> tuple[DiffItem, ...]:
        """Extras Hearth created and would remove if pruning were on."""
        return tuple(extra for extra in self.extras if extra.managed)

    @property
    def in_sync(self) -> bool:
        """Synced: nothing to apply and nothing of ours left to prune."""
        return not self.items and not self.pending_prune

    def summary(self, *, limit: int = 5) -> str:
        """A short text of the differences, for status messages."""
        differences = [*self.items, *self.pending_prune]
        if not differences:
            return "no differences"
        lines = [item.describe() for item in differences[:limit]]
        if len(differences) > limit:
            lines.append(f"... and {len(differences) - limit} more")
        return "; ".join(lines)


def plan_hash(items: tuple[DiffItem, ...]) -> str:
    """sha256 of the canonical JSON of ordered items; the empty plan has ``EMPTY_PLAN_HASH``."""
    if not items:
        return EMPTY_PLAN_HASH
    return hashlib.sha256(_canonical_json(items)).hexdigest()


class Inventory(BaseModel):
    """What Hearth created on one appliance: per domain, the keys of the objects it manages."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    managed: dict[Domain, frozenset[ObjectKey]] = {}
    secrets: dict[str, str] = {}
    """Which vault value was last applied, per secret (``users/users/alice/password``):
    a fingerprint of the ciphertext (``engine.planning.plan.secret_fingerprint``), never
    the secret. Heartbeats never report passwords, so this is how a password changed in
    git is known to be pending."""

    def keys(self, domain: str) -> frozenset[ObjectKey]:
        return self.managed.get(domain, frozenset())  # type: ignore[call-overload]

    @classmethod
    def of(cls, managed: dict[str, Any], secrets: dict[str, str] | None = None) -> Inventory:
        """From ``{domain: iterable of keys}``, dropping empty domains."""
        return cls(managed={
            domain: frozenset(tuple(key) for key in keys)
            for domain, keys in managed.items() if keys
        }, secrets=secrets or {})


EMPTY_INVENTORY = Inventory()
