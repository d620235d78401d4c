"""The actuator: one ansible-runner run converging some appliances, bridged to asyncio.

``AnsibleExecutor.run`` prepares a private workspace (``workspace.py``), runs a
playbook through ``ansible_runner.run`` and returns a ``RunResult``: per-host
ok/changed/failed/unreachable counts (from the runner's stats), the run status,
its duration and a compact list of per-host events. ``run_async`` runs the same
in a worker thread (ansible-runner is thread-based) and hands each event to an
async or plain callback on the event loop while the run goes on.

A timeout and a cancel callback are always set: the timeout defaults to
``DEFAULT_TIMEOUT`` seconds; cancelling (``cancel`` event, or the asyncio task
being cancelled) stops the ansible-playbook process. A run that could not start
raises ``ExecutionError``; a run whose tasks failed returns normally with
``status == "failed"`` and the failing hosts in ``hosts``.

Which playbook: ``site.yml`` with the names of the domains to converge as tags
(only the domains that changed), or one domain playbook by name. Dry runs are
``--check --diff``.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ExecutionError, InvalidInputError
from engine.execution.workspace import ANSIBLE_DIR, Target, prepare_workspace
from schemas.plan import DOMAIN_ORDER

DEFAULT_TIMEOUT = 1800
DOMAINS = (*DOMAIN_ORDER, "agent")
"""Playbooks a run may be limited to: the plan's domains in apply order, and the agent."""
PLAYBOOKS = (*DOMAINS, "site")
_EXECUTION_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_unreachable"}
_HOST_EVENTS = _EXECUTION_EVENTS | {"runner_on_skipped", "runner_item_on_ok",
                                    "runner_item_on_failed"}

EventCallback = Callable[[dict[str, Any]], Awaitable[None] | None]


@dataclass
class HostResult:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    executions: int = 0
    """Module executions (a loop counts each item it did not skip)."""

    @property
    def succeeded(self) -> bool:
        return self.failed == 0 and self.unreachable == 0


@dataclass
class RunResult:
    run_id: str
    status: str
    """ansible-runner's status: successful, failed, timeout or canceled."""
    rc: int | None
    duration: float
    playbook: str
    tags: list[str]
    hosts: dict[str, HostResult] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    artifacts_dir: Path | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "successful" and all(h.succeeded for h in self.hosts.values())

    @property
    def changed(self) -> int:
        return sum(h.changed for h in self.hosts.values())

    @property
    def failed_hosts(self) -> int:
        return sum(1 for h in self.hosts.values() if not h.succeeded)

    def record(self) -> dict[str, Any]:
        """What the run row keeps as ``results``: status, duration, domains, per-host counts."""
        return {"status": self.status, "duration": round(self.duration, 3), "domains": self.tags,
                "hosts": {name: {"ok": host.ok, "changed": host.changed, "failed": host.failed,
                                 "unreachable": host.unreachable, "skipped": host.skipped,
                                 "executions": host.executions}
                          for name, host in self.hosts.items()}}


def run_record(result: RunResult | None, names: list[str]) -> dict[str, Any]:
    """``result.record()``, or ``not-run`` for each appliance when Ansible never started."""
    if result is None:
        return {name: {"status": "not-run"} for name in names}
    return result.record()


def summarize_event(event: dict[str, Any]) -> dict[str, Any] | None:
    """The part of a runner event worth keeping: host, task, outcome, message."""
    name = event.get("event")
    if name not in _HOST_EVENTS:
        return None
    data = event.get("event_data", {})
    res = data.get("res") or {}
    out: dict[str, Any] = {
        "event": name,
        "host": data.get("host"),
        "play": data.get("play"),
        "task": data.get("task"),
        "role": data.get("role"),
        "changed": bool(res.get("changed", False)) if isinstance(res, dict) else False,
        "duration": data.get("duration"),
    }
    if isinstance(res, dict):
        if res.get("msg"):
            out["msg"] = str(res["msg"])[:2000]
        if res.get("changes"):
            out["changes"] = res["changes"]
        if res.get("changed_paths"):
            out["changed_paths"] = res["changed_paths"]
    return out


def _executions(event: dict[str, Any]) -> int:
    res = event.get("event_data", {}).get("res") or {}
    results = res.get("results") if isinstance(res, dict) else None
    if isinstance(results, list):
        return sum(1 for r in results if isinstance(r, dict) and not r.get("skipped"))
    return 1


class AnsibleExecutor:
    """Runs Hearth's playbooks with ansible-runner, one private directory per run."""

    def __init__(self, *, data_dir: Path, project_dir: Path = ANSIBLE_DIR,
                 timeout: int = DEFAULT_TIMEOUT, forks: int = 25,
                 keep_workspaces: bool = True) -> None:
        self.data_dir = data_dir
        self.project_dir = project_dir
        self.timeout = timeout
        self.forks = forks
        self.keep_workspaces = keep_workspaces

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / "runs"

    @property
    def pki_dir(self) -> Path:
        return self.data_dir / "pki"

    def run(
        self,
        *,
        run_id: str,
        extravars: dict[str, Any],
        targets: Sequence[Target],
        playbook: str = "site",
        domains: Sequence[str] | None = None,
        limit: Sequence[str] | None = None,
        check: bool = False,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        cancel: threading.Event | None = None,
        timeout: int | None = None,
    ) -> RunResult:
        """Run ``playbook`` (``site`` with ``domains`` as tags, or a domain's own) and wait."""
        # ~0.3 s to import; only a run needs it
        import ansible_runner

        if playbook not in PLAYBOOKS:
            raise InvalidInputError(f"unknown playbook {playbook!r}; one of {PLAYBOOKS}")
        tags = sorted(set(domains or []))
        unknown = set(tags) - set(DOMAINS)
        if unknown:
            raise InvalidInputError(f"unknown domains {sorted(unknown)}; known: {DOMAINS}")
        if tags and playbook != "site":
            raise InvalidInputError("domains select tags of site.yml; pass playbook='site'")
        if not targets:
            raise InvalidInputError("a run needs at least one appliance")
        workspace = prepare_workspace(
            runs_dir=self.runs_dir, run_id=run_id, extravars=extravars,
            targets=list(targets), pki_dir=self.pki_dir, project_dir=self.project_dir,
        )
        cancel = cancel or threading.Event()
        events: list[dict[str, Any]] = []
        executions: dict[str, int] = {}
        stats: dict[str, dict[str, int]] = {}

        def handle(event: dict[str, Any]) -> bool:
            name = event.get("event")
            if name == "playbook_on_stats":
                data = event.get("event_data", {})
                stats.update({k: data.get(k) or {} for k in
                              ("ok", "changed", "failures", "dark", "skipped")})
            if name in _EXECUTION_EVENTS:
                host = event.get("event_data", {}).get("host")
                executions[host] = executions.get(host, 0) + _executions(event)
            summary = summarize_event(event)
            if summary is not None:
                events.append(summary)
                if on_event is not None:
                    on_event(summary)
            return True  # keep the event in the run's artifacts (the run record)

        cmdline = "--check --diff" if check else None
        started = time.monotonic()
        try:
            runner = ansible_runner.run(
                private_data_dir=str(workspace.private_data_dir),
                project_dir=str(self.project_dir),
                ident=run_id,
                playbook=f"playbooks/{playbook}.yml",
                inventory=str(workspace.inventory),
                limit=",".join(limit) if limit else None,
                tags=",".join(tags) if tags else None,
                cmdline=cmdline,
                forks=min(self.forks, max(1, len(targets))),
                timeout=timeout or self.timeout,
                cancel_callback=cancel.is_set,
                event_handler=handle,
                quiet=True,
                suppress_env_files=True,
                settings={"suppress_ansible_output": True},
            )
        except Exception as exc:  # ansible-runner raises bare exceptions on setup errors
            raise ExecutionError(f"ansible-runner could not run {playbook}.yml: {exc}") from exc
        finally:
            workspace.scrub()
            if not self.keep_workspaces:
                workspace.remove()
        duration = time.monotonic() - started
        hosts: dict[str, HostResult] = {}
        for name in [t.name for t in targets if not limit or t.name in limit]:
            hosts[name] = HostResult(
                ok=stats.get("ok", {}).get(name, 0),
                changed=stats.get("changed", {}).get(name, 0),
                failed=stats.get("failures", {}).get(name, 0),
                unreachable=stats.get("dark", {}).get(name, 0),
                skipped=stats.get("skipped", {}).get(name, 0),
                executions=executions.get(name, 0),
            )
        if runner.status not in {"successful", "failed", "timeout", "canceled"}:
            raise ExecutionError(f"ansible-runner ended with status {runner.status!r} "
                                 f"(rc {runner.rc}); see {workspace.private_data_dir}")
        if runner.status == "failed" and not stats:
            # No play ran: a syntax, inventory or variable error, not a failed task.
            tail = _stdout_tail(runner)
            raise ExecutionError(f"{playbook}.yml did not run (rc {runner.rc}): {tail}")
        return RunResult(
            run_id=run_id, status=runner.status, rc=runner.rc, duration=duration,
            playbook=playbook, tags=tags, hosts=hosts, events=events,
            artifacts_dir=Path(runner.config.artifact_dir) if self.keep_workspaces else None,
        )

    async def run_async(self, *, on_event: EventCallback | None = None,
                        **kwargs: Any) -> RunResult:
        """``run`` in a worker thread; events reach ``on_event`` on this event loop.

        Cancelling the awaiting task stops the ansible-playbook process.
        """
        loop = asyncio.get_running_loop()
        cancel = kwargs.pop("cancel", None) or threading.Event()
        pending: set[asyncio.Future[Any]] = set()

        def forward(summary: dict[str, Any]) -> None:
            if on_event is None:
                return

            def deliver() -> None:
                outcome = on_event(summary)
                if inspect.isawaitable(outcome):
                    future = asyncio.ensure_future(outcome)
                    pending.add(future)
                    future.add_done_callback(pending.discard)

            loop.call_soon_threadsafe(deliver)

        task = asyncio.ensure_future(asyncio.to_thread(
            self.run, on_event=forward, cancel=cancel, **kwargs))
        try:
            result = await asyncio.shield(task)
        except asyncio.CancelledError:
            cancel.set()
            await asyncio.wait([task])
            raise
        await asyncio.sleep(0)  # let the last call_soon_threadsafe deliveries run
        if pending:
            await asyncio.gather(*pending)
        return result


def _stdout_tail(runner: Any) -> str:
    try:
        return runner.stdout.read()[-3000:]
    except Exception:  # best effort, for an error message
        return "(no output)"
