"""build_plan and next_inventory, table-driven from the office-1 fixture."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.planning.normalize import normalize_desired
from engine.planning.plan import ApplyResult, build_plan, next_inventory
from schemas.config import Policies
from schemas.plan import EMPTY_INVENTORY, EMPTY_PLAN_HASH, Inventory, Plan

from .helpers import NOW, REVISION, desired_of, observed_of

Doc = dict[str, Any]
Row = tuple[str, str, tuple[str, ...], str]
"""(domain, operation, path, reason) of one expected item."""


def _plan(desired: Doc, observed: Doc | None, *, inventory: Inventory = EMPTY_INVENTORY,
          prune: bool = False) -> Plan:
    return build_plan(
        desired=desired_of(desired),
        observed=observed_of(observed) if observed is not None else None,
        inventory=inventory,
        policy=Policies(prune=prune),
        revision=REVISION,
        now=NOW,
    )


def _rows(items: tuple[Any, ...]) -> list[Row]:
    return [(i.domain, i.operation, i.path, i.reason) for i in items]


def _user(name: str, **extra: Any) -> Doc:
    return {"name": name, "uid": 1500, "full_name": name.title(), "groups": ["staff"],
            "shell": "/bin/bash", **extra}


@dataclass(frozen=True)
class Case:
    id: str
    change_desired: Callable[[Doc], None] = lambda doc: None
    change_observed: Callable[[Doc], None] = lambda doc: None
    inventory: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    prune: bool = False
    items: list[Row] = field(default_factory=list)
    extras: list[tuple[Row, bool]] = field(default_factory=list)
    """(row, managed)."""


def _add_dave(doc: Doc) -> None:
    doc["users"]["users"].append({"name": "dave", "full_name": "Dave", "groups": ["staff"]})


def _box_has_eve(doc: Doc) -> None:
    doc["users"]["users"].append(_user("eve"))


def _box_has_mallory(doc: Doc) -> None:
    doc["users"]["users"].append(_user("mallory"))


def _box_lost_samba_account(doc: Doc) -> None:
    doc["samba"]["samba_users"].remove("carol")


def _box_has_mallory_account(doc: Doc) -> None:
    doc["samba"]["samba_users"].append("mallory")


def _box_has_eve_account(doc: Doc) -> None:
    doc["samba"]["samba_users"].append("eve")


def _move_share(doc: Doc) -> None:
    doc["samba"]["shares"][0]["path"] = "/srv/data2"


def _box_dropped_record(doc: Doc) -> None:
    doc["dns"]["zones"][0]["records"] = [
        r for r in doc["dns"]["zones"][0]["records"] if r["type"] != "MX"
    ]


def _box_has_extra_record(doc: Doc) -> None:
    doc["dns"]["zones"][0]["records"].append(
        {"name": "old.acme.example.", "type": "A", "ttl": 3600, "data": "192.0.2.99"})


def _relative_names(doc: Doc) -> None:
    """The agent reports relative owner names, '@', unsplit TXT and bare MX targets."""
    zone = doc["dns"]["zones"][0]
    zone["name"] = "ACME.example"
    for record in zone["records"]:
        name = record["name"].removesuffix("acme.example.").rstrip(".")
        record["name"] = name or "@"
        if record["type"] == "MX":
            record["data"] = "10 mail"
        if record["type"] == "CNAME":
            record["data"] = "Office-1"
        if record["type"] == "TXT":
            record["data"] = '"v=spf1 " "mx -all"'


def _box_extra_zone(doc: Doc) -> None:
    doc["dns"]["zones"].append({"name": "old.example", "records": [
        {"name": "old.example.", "type": "A", "ttl": 60, "data": "192.0.2.99"},
    ]})


def _renewal_due(doc: Doc) -> None:
    doc["pki"]["certificates"][0]["not_after"] = "2026-12-10T00:00:00Z"


def _wrong_key_and_fingerprint(doc: Doc) -> None:
    cert = doc["pki"]["certificates"][0]
    cert["fingerprint_sha256"] = "ff:ff"
    cert["not_before"] = "2026-11-01T00:00:00Z"
    cert["key_type"] = "rsa2048"


def _no_samba(doc: Doc) -> None:
    doc["samba"] = None


def _stale_serial_and_ns(doc: Doc) -> None:
    zone = doc["dns"]["zones"][0]
    zone["serial"] = 2026112699
    zone["records"].append({"name": "acme.example.", "type": "NS", "ttl": 60,
                            "data": "ns2.acme.example."})


def _unset_uid_changes(doc: Doc) -> None:
    doc["users"]["users"][1]["uid"] = 4242  # bob: the YAML gives no uid


def _desired_drops_samba(doc: Doc) -> None:
    doc["samba"] = None


def _desired_drops_admin_share(doc: Doc) -> None:
    doc["samba"]["shares"].pop()


CASES = [
    Case("converged"),
    Case("volatile-fields-ignored", change_observed=_stale_serial_and_ns),
    Case("uid-not-in-yaml-ignored", change_observed=_unset_uid_changes),
    Case("dns-relative-names-and-split-txt", change_observed=_relative_names),
    # dave reaches the data share through the staff group: the run adds his Samba account
    Case("added-user", change_desired=_add_dave,
         items=[("users", "add", ("users", "dave"), "missing"),
                ("samba", "add", ("accounts", "dave"), "missing")]),
    Case("samba-account-missing-on-box", change_observed=_box_lost_samba_account,
         items=[("samba", "add", ("accounts", "carol"), "missing")]),
    Case("absent-user-samba-account-removed", change_observed=_box_has_mallory_account,
         items=[("samba", "remove", ("accounts", "mallory"), "absent")]),
    Case("unmanaged-samba-account-is-extra", change_observed=_box_has_eve_account,
         extras=[(("samba", "remove", ("accounts", "eve"), "extra"), False)]),
    Case("unmanaged-user-is-extra", change_observed=_box_has_eve,
         extras=[(("users", "remove", ("users", "eve"), "extra"), False)]),
    Case("unmanaged-user-with-prune-is-extra", change_observed=_box_has_eve, prune=True,
         extras=[(("users", "remove", ("users", "eve"), "extra"), False)]),
    Case("managed-user-with-prune-removed", change_observed=_box_has_eve, prune=True,
         inventory={"users": [("users", "eve")]},
         items=[("users", "remove", ("users", "eve"), "pruned")]),
    Case("managed-user-without-prune-is-managed-extra", change_observed=_box_has_eve,
         inventory={"users": [("users", "eve")]},
         extras=[(("users", "remove", ("users", "eve"), "extra"), True)]),
    Case("absent-user-removed-without-prune", change_observed=_box_has_mallory,
         items=[("users", "remove", ("users", "mallory"), "absent")]),
    Case("share-path-change", change_desired=_move_share,
         items=[("samba", "modify", ("shares", "data", "path"), "differs")]),
    Case("record-missing-on-box", change_observed=_box_dropped_record,
         items=[("dns", "add", ("zones", "acme.example", "records",
                                "acme.example. MX 10 mail.acme.example."), "missing")]),
    # The zone file is written whole from the YAML: a record the YAML dropped goes, prune or not.
    Case("record-not-in-yaml-removed-without-prune", change_observed=_box_has_extra_record,
         items=[("dns", "remove", ("zones", "acme.example", "records",
                                   "old.acme.example. A 192.0.2.99"), "not in zone")]),
    Case("record-not-in-yaml-removed-with-prune", change_observed=_box_has_extra_record,
         prune=True,
         items=[("dns", "remove", ("zones", "acme.example", "records",
                                   "old.acme.example. A 192.0.2.99"), "not in zone")]),
    Case("extra-zone-reported-once", change_observed=_box_extra_zone,
         extras=[(("dns", "remove", ("zones", "old.example"), "extra"), False)]),
    Case("certificate-renewal-due", change_observed=_renewal_due,
         items=[("pki", "modify", ("certificates", "mail", "not_after"), "renewal due")]),
    Case("certificate-key-type", change_observed=_wrong_key_and_fingerprint,
         items=[("pki", "modify", ("certificates", "mail", "key_type"), "differs")]),
    Case("domain-not-running", change_observed=_no_samba,
         items=[("samba", "add", (), "not running"),
                ("samba", "add", ("accounts", "alice"), "missing"),
                ("samba", "add", ("accounts", "bob"), "missing"),
                ("samba", "add", ("accounts", "carol"), "missing"),
                ("samba", "add", ("shares", "admin"), "missing"),
                ("samba", "add", ("shares", "data"), "missing"),
                ("samba", "modify", ("workgroup",), "differs")]),
    Case("domain-not-in-yaml-is-not-managed", change_desired=_desired_drops_samba,
         inventory={"samba": [("shares", "data"), ("shares", "admin")]}, prune=True),
    Case("share-dropped-from-yaml-pruned", change_desired=_desired_drops_admin_share,
         inventory={"samba": [("shares", "data"), ("shares", "admin")]}, prune=True,
         items=[("samba", "remove", ("shares", "admin"), "pruned")]),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_build_plan(case: Case, desired_doc: Doc, observed_doc: Doc) -> None:
    case.change_desired(desired_doc)
    case.change_observed(observed_doc)
    plan = _plan(desired_doc, observed_doc, inventory=Inventory.of(case.inventory),
                 prune=case.prune)
    assert _rows(plan.items) == case.items
    assert [(row, e.managed) for row, e in zip(_rows(plan.extras), plan.extras, strict=True)] \
        == case.extras
    assert plan.empty is (not case.items)
    assert plan.in_sync is (not case.items and not any(m for _, m in case.extras))
    assert plan.hash == (EMPTY_PLAN_HASH if not case.items else plan.hash)
    assert plan.domains_changed == tuple(dict.fromkeys(row[0] for row in case.items))


def test_modify_item_says_before_and_after(desired_doc: Doc, observed_doc: Doc) -> None:
    _move_share(desired_doc)
    (item,) = _plan(desired_doc, observed_doc).items
    assert (item.before, item.after) == ("/srv/data", "/srv/data2")


def test_no_heartbeat_plans_everything(desired_doc: Doc) -> None:
    plan = _plan(desired_doc, None)
    assert plan.domains_changed == ("users", "pki", "dns", "samba", "mail")
    adds = {i.path for i in plan.items if i.operation == "add"}
    assert ("users", "alice") in adds
    assert ("zones", "acme.example", "records", 'acme.example. TXT "v=spf1 mx -all"') in adds
    assert not any(i.operation == "remove" for i in plan.items)


def test_items_in_apply_order(desired_doc: Doc, observed_doc: Doc) -> None:
    _add_dave(desired_doc)
    _move_share(desired_doc)
    _box_has_mallory(observed_doc)
    _renewal_due(observed_doc)
    plan = _plan(desired_doc, observed_doc)
    assert [(i.domain, i.operation) for i in plan.items] == [
        ("users", "add"), ("users", "remove"), ("pki", "modify"), ("samba", "add"),
        ("samba", "modify"),
    ]
    assert plan.domains_changed == ("users", "pki", "samba")


def test_hash_is_stable_whatever_the_input_order(desired_doc: Doc, observed_doc: Doc) -> None:
    _add_dave(desired_doc)
    _box_dropped_record(observed_doc)
    _move_share(desired_doc)
    first = _plan(desired_doc, observed_doc)
    shuffler = random.Random(5)
    for section in (desired_doc["users"]["users"], desired_doc["samba"]["shares"],
                    desired_doc["dns"]["zones"][0]["records"],
                    observed_doc["dns"]["zones"][0]["records"], observed_doc["users"]["users"]):
        shuffler.shuffle(section)
    desired_doc["users"]["users"][0]["groups"].reverse()
    second = _plan(desired_doc, observed_doc)
    assert second == first
    assert second.hash == first.hash != EMPTY_PLAN_HASH
    assert Plan.model_validate(first.model_dump(mode="json")) == first


def test_plan_rejects_a_forged_hash(desired_doc: Doc, observed_doc: Doc) -> None:
    _add_dave(desired_doc)
    data = _plan(desired_doc, observed_doc).model_dump(mode="json")
    data["hash"] = "0" * 64
    with pytest.raises(ValueError, match="hash"):
        Plan.model_validate(data)


def test_cached_desired_canonical_gives_the_same_plan(desired_doc: Doc, observed_doc: Doc
                                                       ) -> None:
    _move_share(desired_doc)
    desired = desired_of(desired_doc)
    kwargs = dict(desired=desired, observed=observed_of(observed_doc), inventory=Inventory(),
                  policy=Policies(), revision=REVISION, now=NOW)
    assert build_plan(**kwargs, desired_canonical=normalize_desired(desired)) == \
        build_plan(**kwargs)


# --------------------------------------------------------------------------- #
# next_inventory
# --------------------------------------------------------------------------- #

INVENTORY_CASES = [
    # (id, prune, result, eve stays managed)
    ("pruned-and-removed", True, ApplyResult(), False),
    ("pruned-but-users-failed", True, ApplyResult(failed_domains=frozenset({"users"})), True),
    ("pruned-but-key-failed", True, ApplyResult(failed_keys=frozenset({("users", "eve")})),
     True),
    ("pruned-not-run", True, None, True),
    ("prune-off-keeps-managed-extra", False, ApplyResult(), True),
]


@pytest.mark.parametrize(("prune", "result", "stays"),
                         [c[1:] for c in INVENTORY_CASES], ids=[c[0] for c in INVENTORY_CASES])
def test_next_inventory(prune: bool, result: ApplyResult | None, stays: bool,
                        desired_doc: Doc, observed_doc: Doc) -> None:
    _box_has_eve(observed_doc)
    previous = Inventory.of({"users": [("users", "eve"), ("users", "alice")],
                             "samba": [("shares", "gone")]})
    desired_doc["samba"] = None
    plan = _plan(desired_doc, observed_doc, inventory=previous, prune=prune)
    after = next_inventory(previous, desired_of(desired_doc), result, plan=plan)
    assert (("users", "eve") in after.keys("users")) is stays
    assert {("users", "alice"), ("users", "bob"), ("groups", "staff")} <= after.keys("users")
    # samba is not in the YAML any more: what Hearth created there stays known.
    assert after.keys("samba") == {("shares", "gone")}
    assert ("zones", "acme.example", "records", "acme.example. A 192.0.2.10") in \
        after.keys("dns")


def test_next_inventory_drops_what_is_gone(desired_doc: Doc, observed_doc: Doc) -> None:
    previous = Inventory.of({"users": [("users", "zed")]})
    plan = _plan(desired_doc, observed_doc, inventory=previous, prune=False)
    after = next_inventory(previous, desired_of(desired_doc), ApplyResult(), plan=plan)
    assert ("users", "zed") not in after.keys("users")


def test_inventory_round_trips_as_json() -> None:
    inventory = Inventory.of({"dns": [("zones", "a.example", "records", "a.example. A 1.2.3.4")]})
    assert Inventory.model_validate_json(inventory.model_dump_json()) == inventory
