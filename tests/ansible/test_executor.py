"""AnsibleExecutor bridged to asyncio: events stream while the run goes on; cancel stops it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from engine.errors import InvalidInputError
from engine.execution.ansible import AnsibleExecutor
from engine.execution.extravars import appliance_vars, build_extravars
from engine.execution.workspace import Target

from .desired import literal_appliance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def exec_root(clone) -> Path:
    (root,) = clone(["executor-1"])
    return root


def _extravars() -> dict[str, Any]:
    return build_extravars([appliance_vars(literal_appliance("executor-1"))])


async def test_run_async_streams_events_to_an_async_callback(
        executor: AnsibleExecutor, exec_root: Path) -> None:
    seen: list[dict[str, Any]] = []

    async def on_event(event: dict[str, Any]) -> None:
        seen.append(event)

    result = await executor.run_async(
        run_id="async-events", extravars=_extravars(), domains=["users"],
        targets=[Target(name="executor-1", root=exec_root)], on_event=on_event)
    assert result.succeeded
    assert result.hosts["executor-1"].changed == 1
    assert result.hosts["executor-1"].executions == 1
    assert [e["task"] for e in seen if e["event"] == "runner_on_ok"] == ["Users and groups"]
    assert seen == result.events


async def test_cancelling_the_task_stops_the_run(executor: AnsibleExecutor,
                                                 exec_root: Path) -> None:
    first = asyncio.Event()
    task = asyncio.ensure_future(executor.run_async(
        run_id="async-cancel", extravars=_extravars(),
        targets=[Target(name="executor-1", root=exec_root)],
        on_event=lambda event: first.set()))
    await asyncio.wait_for(first.wait(), timeout=120)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    status = (executor.runs_dir / "async-cancel/artifacts/async-cancel/status").read_text()
    assert status.strip() == "canceled"


def test_unknown_domain_and_missing_extravars_are_refused(executor: AnsibleExecutor,
                                                          exec_root: Path) -> None:
    target = Target(name="executor-1", root=exec_root)
    with pytest.raises(InvalidInputError):
        executor.run(run_id="bad-domain", extravars=_extravars(), targets=[target],
                     domains=["printers"])
    with pytest.raises(InvalidInputError):
        executor.run(run_id="bad-target", extravars=_extravars(),
                     targets=[Target(name="someone-else", root=exec_root)])
