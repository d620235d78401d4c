from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.planning.policy import decide, window_open
from schemas.config import MaintenanceWindow, Policies
from schemas.plan import DiffItem, Plan

REV = "a" * 40
OLD = "b" * 40
WED_NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # a Wednesday


def _plan(empty: bool = False) -> Plan:
    items = [] if empty else [DiffItem(domain="users", operation="add", path=("user", "zoe"),
                                       after={"name": "zoe"}, reason="missing")]
    return Plan.of(appliance="t/a", revision=REV, items=items, extras=[])


@pytest.mark.parametrize(
    ("policy", "applied", "manual", "run", "reason"),
    [
        pytest.param(Policies(), REV, False, True, "SelfHeal", id="drift-self-heal"),
        pytest.param(Policies(self_heal=False), REV, False, False, "SelfHealDisabled",
                     id="drift-no-self-heal"),
        pytest.param(Policies(), OLD, False, True, "NewRevision", id="new-revision"),
        pytest.param(Policies(auto_sync=False), OLD, False, False, "AutoSyncDisabled",
                     id="no-auto-sync"),
        pytest.param(Policies(auto_sync=False, self_heal=False), OLD, True, True, "ManualSync",
                     id="manual-overrides"),
        pytest.param(Policies(maintenance_windows=[MaintenanceWindow(
            days=["sat"], start="01:00", end="05:00")]), OLD, False, False,
            "OutsideMaintenanceWindow", id="outside-window"),
        pytest.param(Policies(maintenance_windows=[MaintenanceWindow(
            days=["wed"], start="11:00", end="13:00")]), OLD, False, True, "NewRevision",
            id="inside-window"),
    ],
)
def test_decide(policy: Policies, applied: str, manual: bool, run: bool, reason: str) -> None:
    decision = decide(plan=_plan(), policy=policy, applied_revision=applied, manual=manual,
                      now=WED_NOON)
    assert (decision.run, decision.reason) == (run, reason)


def test_empty_plan_never_runs() -> None:
    decision = decide(plan=_plan(empty=True), policy=Policies(), applied_revision=OLD,
                      manual=True, now=WED_NOON)
    assert (decision.run, decision.reason) == (False, "NothingToDo")


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        pytest.param(datetime(2026, 11, 25, 23, 30, tzinfo=UTC), True, id="wed-late"),
        pytest.param(datetime(2026, 11, 26, 1, 30, tzinfo=UTC), True, id="thu-early-spill"),
        pytest.param(datetime(2026, 11, 26, 23, 30, tzinfo=UTC), False, id="thu-late"),
        pytest.param(datetime(2026, 11, 25, 12, 0, tzinfo=UTC), False, id="wed-noon"),
    ],
)
def test_window_across_midnight(when: datetime, expected: bool) -> None:
    window = MaintenanceWindow(days=["wed"], start="22:00", end="02:00")
    assert window_open(window, when) is expected


def test_window_uses_its_timezone() -> None:
    window = MaintenanceWindow(days=["wed"], start="19:00", end="23:00", timezone="Europe/Berlin")
    assert window_open(window, datetime(2026, 11, 25, 18, 30, tzinfo=UTC))  # 19:30 in Berlin
    assert not window_open(window, datetime(2026, 11, 25, 17, 30, tzinfo=UTC))
