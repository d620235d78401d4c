"""choose: the reconciler's whole decision for one appliance, from a literal table."""

from __future__ import annotations

import pytest

from engine.planning.policy import Decision, choose
from schemas.config import Policies
from schemas.plan import DiffItem, Plan
from tests.planning.helpers import NOW

REV = "2" * 40
DRIFT = Plan.of(appliance="acme/office", revision=REV, items=[
    DiffItem(domain="users", operation="add", path=("users", "eve"), reason="missing")])
EMPTY = Plan.of(appliance="acme/office", revision=REV)
ON = Policies(auto_sync=True, self_heal=True)
OFF = Policies(auto_sync=False, self_heal=False)


@pytest.mark.parametrize(("plan", "policy", "manual", "dry_run", "stalled", "expected"), [
    pytest.param(DRIFT, ON, False, False, True,
                 Decision(False, "Stalled", "waiting for a new revision or a manual sync"),
                 id="stalled-waits"),
    pytest.param(DRIFT, ON, True, False, True,
                 Decision(True, "ManualSync", "an operator asked for a sync"),
                 id="manual-unstalls"),
    pytest.param(DRIFT, OFF, True, True, False,
                 Decision(True, "DryRun", "an operator asked for a dry run"), id="dry-run"),
    pytest.param(EMPTY, ON, True, True, False,
                 Decision(True, "DryRun", "an operator asked for a dry run"),
                 id="dry-run-of-an-empty-plan"),
    pytest.param(EMPTY, ON, False, False, False, Decision(False, "NothingToDo"),
                 id="nothing-to-do"),
    pytest.param(DRIFT, ON, False, False, False, Decision(True, "SelfHeal"), id="self-heal"),
    pytest.param(DRIFT, OFF, False, False, False,
                 Decision(False, "SelfHealDisabled",
                          "drift on the appliance is reported, not undone (self_heal off): "
                          "users add users/eve: add (missing)"), id="self-heal-off"),
])
def test_choose(plan: Plan, policy: Policies, manual: bool, dry_run: bool, stalled: bool,
                expected: Decision) -> None:
    assert choose(plan=plan, policy=policy, applied_revision=REV, manual=manual,
                  dry_run=dry_run, stalled=stalled, now=NOW) == expected
