"""The agent batch reloads systemd through hearth_systemctl, durably.

On a box where services run, a changed unit file needs `systemctl
daemon-reload` and the timer a restart. These go through the agent role's
`agent_systemctl` (the inventory's `hearth_systemctl`, `systemctl` by default)
like every other domain's reloads, so they are recorded in a pending-reload
marker until they pass and a test can point them at a recording script. The
root's fake systemctl is the one of tests/ansible/test_reloads.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.execution.extravars import appliance_vars, build_extravars
from schemas.config import DesiredAppliance

from .desired import appliance_data
from .test_reloads import CALLS, FAIL, FAKE, FAKE_SYSTEMCTL, PENDING, ServiceRoot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAME = "agent-reload-1"
TIMER = "etc/systemd/system/hearth-agent.timer"


def _run(executor, root: Path, interval: int, run_id: str):
    desired = DesiredAppliance.model_validate(appliance_data(NAME))
    extravars = build_extravars([appliance_vars(desired, agent_interval_seconds=interval)])
    return executor.run(run_id=run_id, extravars=extravars,
                        targets=[ServiceRoot(name=NAME, root=root)], domains=["agent"])


def _calls(root: Path) -> list[str]:
    path = root / CALLS
    lines = path.read_text().splitlines() if path.exists() else []
    path.write_text("")
    return lines


def test_agent_changes_reload_through_hearth_systemctl_and_stay_pending_on_failure(
        clone, converge, executor) -> None:
    (root,) = clone([NAME], hostnames={NAME: f"{NAME}.example.test"})
    first = converge({root: DesiredAppliance.model_validate(appliance_data(NAME))},
                     domains=["agent"])
    assert first.succeeded, first.events
    script = root / FAKE.lstrip("/")
    script.write_text(FAKE_SYSTEMCTL)
    script.chmod(0o755)

    # A new interval changes agent.json and the timer's text: both commands run, in order.
    changed = _run(executor, root, 120, "agent-reload-1")
    assert changed.succeeded, changed.events
    assert "# 120 s unless the API" in (root / TIMER).read_text()
    assert _calls(root) == ["daemon-reload", "restart hearth-agent.timer"]
    assert list((root / PENDING).iterdir()) == []

    # The restart fails: the run fails, the previous files are put back and reloaded
    # once more (failing again), and the marker keeps both commands ...
    (root / FAIL).write_text("restart hearth-agent.timer\n")
    failed = _run(executor, root, 90, "agent-reload-2")
    assert not failed.succeeded
    assert _calls(root) == ["daemon-reload", "restart hearth-agent.timer"] * 2
    assert "# 120 s unless the API" in (root / TIMER).read_text()
    marker = json.loads((root / PENDING / "agent.json").read_text())
    assert marker["on_change"] == [[FAKE, "daemon-reload"], [FAKE, "restart", "hearth-agent.timer"]]

    # ... and the next run retries them although no file changes.
    (root / FAIL).unlink()
    retried = _run(executor, root, 120, "agent-reload-3")
    assert retried.succeeded, retried.events
    assert retried.hosts[NAME].changed == 1  # the pending reload ran
    assert _calls(root) == ["daemon-reload", "restart hearth-agent.timer"]
    assert list((root / PENDING).iterdir()) == []
