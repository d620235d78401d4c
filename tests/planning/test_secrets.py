"""Passwords in git: pending until applied, tracked by fingerprint, never shown.

Heartbeats never report a password, so the plan compares the vault value in git
with the fingerprint of the one last applied (``Inventory.secrets``).
"""

from __future__ import annotations

from typing import Any

from engine.planning.plan import (
    SECRET_CHANGED,
    ApplyResult,
    build_plan,
    next_inventory,
    secret_fingerprint,
)
from schemas.config import Policies
from schemas.plan import EMPTY_INVENTORY, Inventory, Plan

from .helpers import NOW, REVISION, desired_of, observed_of

Doc = dict[str, Any]


def _vault(tag: str) -> str:
    return f"$ANSIBLE_VAULT;1.1;AES256\n{tag.encode().hex():0<64}\n"


def _with_secrets(desired_doc: Doc, observed_doc: Doc, *, password: str = "p1",
                  samba: str | None = "s1") -> Doc:
    alice = next(u for u in desired_doc["users"]["users"] if u["name"] == "alice")
    alice["password"] = _vault(password)
    if samba is not None:
        alice["samba_password"] = _vault(samba)
    seen = next(u for u in observed_doc["users"]["users"] if u["name"] == "alice")
    seen["has_password"] = True
    return desired_doc


def _plan(desired: Doc, observed: Doc, inventory: Inventory = EMPTY_INVENTORY, *,
          secrets: bool = True) -> Plan:
    return build_plan(desired=desired_of(desired), observed=observed_of(observed),
                      inventory=inventory, policy=Policies(), revision=REVISION, now=NOW,
                      secrets=secrets)


def _secret_rows(plan: Plan) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(i.domain, i.operation, i.path) for i in plan.items if i.reason == SECRET_CHANGED]


def test_a_converged_box_is_in_sync_without_secrets(desired_doc: Doc, observed_doc: Doc) -> None:
    assert _plan(desired_doc, observed_doc).empty


def test_vault_values_never_applied_are_pending_then_settled_by_a_run(
        desired_doc: Doc, observed_doc: Doc) -> None:
    doc = _with_secrets(desired_doc, observed_doc)
    plan = _plan(doc, observed_doc)
    assert _secret_rows(plan) == [("users", "modify", ("users", "alice", "password")),
                                  ("samba", "modify", ("accounts", "alice", "password"))]
    assert plan.domains_changed == ("users", "samba")
    after = next_inventory(EMPTY_INVENTORY, desired_of(doc), ApplyResult(), plan=plan)
    assert _plan(doc, observed_doc, after).empty


def test_a_password_changed_in_git_is_one_item_that_shows_no_secret(
        desired_doc: Doc, observed_doc: Doc) -> None:
    doc = _with_secrets(desired_doc, observed_doc)
    applied = next_inventory(EMPTY_INVENTORY, desired_of(doc), ApplyResult(),
                             plan=_plan(doc, observed_doc))
    old = doc["users"]["users"][0]["password"]
    doc["users"]["users"][0]["password"] = _vault("p2")
    plan = _plan(doc, observed_doc, applied)
    assert _secret_rows(plan) == [("users", "modify", ("users", "alice", "password"))]
    item = plan.items[0]
    assert (item.before, item.after) == (secret_fingerprint(old), secret_fingerprint(_vault("p2")))
    text = plan.model_dump_json() + item.describe()
    assert "ANSIBLE_VAULT" not in text and _vault("p2").split()[1] not in text


def test_a_failed_domain_keeps_its_secret_pending(desired_doc: Doc, observed_doc: Doc) -> None:
    doc = _with_secrets(desired_doc, observed_doc)
    plan = _plan(doc, observed_doc)
    after = next_inventory(EMPTY_INVENTORY, desired_of(doc),
                           ApplyResult(failed_domains=frozenset({"samba"})), plan=plan)
    assert _secret_rows(_plan(doc, observed_doc, after)) == [
        ("samba", "modify", ("accounts", "alice", "password"))]
    not_run = next_inventory(EMPTY_INVENTORY, desired_of(doc), None, plan=plan)
    assert len(_secret_rows(_plan(doc, observed_doc, not_run))) == 2


def test_samba_password_of_a_user_without_a_samba_account_is_not_planned(
        desired_doc: Doc, observed_doc: Doc) -> None:
    doc = _with_secrets(desired_doc, observed_doc, samba=None)
    dave = {"name": "dave", "full_name": "Dave", "groups": ["nobody-shares"],
            "samba_password": _vault("d")}
    doc["users"]["users"].append(dave)
    doc["users"]["groups"].append({"name": "nobody-shares"})
    rows = _secret_rows(_plan(doc, observed_doc))
    assert ("samba", "modify", ("accounts", "dave", "password")) not in rows
    doc["samba"] = None  # no samba on the box: no Samba secrets at all
    assert [r for r in _secret_rows(_plan(doc, observed_doc)) if r[0] == "samba"] == []


def test_a_password_dropped_from_git_is_no_longer_tracked(
        desired_doc: Doc, observed_doc: Doc) -> None:
    doc = _with_secrets(desired_doc, observed_doc)
    applied = next_inventory(EMPTY_INVENTORY, desired_of(doc), ApplyResult(),
                             plan=_plan(doc, observed_doc))
    assert len(applied.secrets) == 2
    del doc["users"]["users"][0]["samba_password"]
    after = next_inventory(applied, desired_of(doc), ApplyResult(),
                           plan=_plan(doc, observed_doc, applied))
    assert list(after.secrets) == ["users/users/alice/password"]
    assert Inventory.model_validate_json(after.model_dump_json()) == after


def test_without_secrets_the_heartbeat_trigger_sees_only_the_box(
        desired_doc: Doc, observed_doc: Doc) -> None:
    doc = _with_secrets(desired_doc, observed_doc)
    assert _plan(doc, observed_doc, secrets=False).empty
