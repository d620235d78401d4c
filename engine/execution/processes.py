"""Ansible processes a dead worker left behind: found in ``/proc`` and killed.

ansible-runner starts ansible-playbook in a session of its own, so killing the
worker (even with SIGKILL) leaves it running. When a new pass takes over an
appliance whose run was left ``running``, it calls ``kill_orphans`` so no task
of the interrupted run touches the appliance after the takeover (invariant 4
of ``docs/architecture.md``).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def kill_orphans(runs_dir: Path, run_ids: list[int], *, proc: Path = Path("/proc")) -> list[int]:
    """Kill the process groups on this machine whose command line names the private
    directory of one of ``run_ids``; returns the groups killed (never our own).

    Processes on other machines died with their machine or are found by the worker there.
    """
    needles = [f"{runs_dir}/{run_id}/".encode() for run_id in run_ids]
    groups: set[int] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if any(needle in cmdline for needle in needles):
            with contextlib.suppress(ProcessLookupError):
                groups.add(os.getpgid(int(entry.name)))
    own = os.getpgid(0)
    for group in groups - {own}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
    return sorted(groups - {own})
