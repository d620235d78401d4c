"""One heartbeat interval, in Settings: the agent, the API and the Missing rule read it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.status_view import status_of
from engine.errors import SettingsError
from engine.settings import ENV_VARS, load_settings
from tests.settings.test_settings import GOOD

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
REV = "a" * 40
RUNNING = [{"name": "named", "status": "running"}]


def test_default_is_thirty_seconds() -> None:
    settings = load_settings(GOOD)
    assert settings.heartbeat_interval == timedelta(seconds=30)
    assert settings.agent_interval_seconds == 30
    assert "HEARTH_HEARTBEAT_INTERVAL" in ENV_VARS


def test_the_environment_sets_it() -> None:
    settings = load_settings({**GOOD, "HEARTH_HEARTBEAT_INTERVAL": "45"})
    assert settings.heartbeat_interval == timedelta(seconds=45)
    assert settings.agent_interval_seconds == 45


@pytest.mark.parametrize("value", ["0", "-5", "soon", "7200"])
def test_a_bad_interval_is_named(value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings({**GOOD, "HEARTH_HEARTBEAT_INTERVAL": value})
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("HEARTH_HEARTBEAT_INTERVAL ")


@pytest.mark.parametrize(("interval", "silent", "health"), [
    (30, 89, "Healthy"),
    (30, 91, "Missing"),
    (60, 91, "Healthy"),
    (60, 181, "Missing"),
], ids=["30s-just-in", "30s-three-missed", "60s-just-in", "60s-three-missed"])
def test_missing_after_three_intervals_of_the_setting(interval: int, silent: int,
                                                      health: str) -> None:
    settings = load_settings({**GOOD, "HEARTH_HEARTBEAT_INTERVAL": str(interval)})
    row = {"received_at": NOW - timedelta(seconds=silent), "reported_revision": REV,
           "services": RUNNING}
    status = status_of(row, desired_revision=REV, now=NOW,
                       heartbeat_interval=settings.heartbeat_interval)
    assert status.health == health
