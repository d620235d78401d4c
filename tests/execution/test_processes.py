"""kill_orphans: real processes in sessions of their own, as ansible-runner starts them."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from engine.execution.processes import kill_orphans

SLEEPER = "import sys, time; time.sleep(60)"


def _start(private_dir: Path) -> subprocess.Popen[bytes]:
    # the run's private directory on the command line, a session of its own
    return subprocess.Popen([sys.executable, "-c", SLEEPER, f"{private_dir}/project"],
                            start_new_session=True)


def _wait_dead(process: subprocess.Popen[bytes]) -> int | None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            return code
        time.sleep(0.05)
    return None


def test_the_orphan_of_an_interrupted_run_is_killed_and_others_live(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    orphan, other = _start(runs / "41"), _start(runs / "410")
    try:
        time.sleep(0.3)  # let /proc show the command lines
        killed = kill_orphans(runs, [41])
        assert killed == [orphan.pid]  # a new session: its group id is its pid
        assert _wait_dead(orphan) == -9
        assert other.poll() is None  # run 410 is not run 41
    finally:
        for process in (orphan, other):
            process.kill()
            process.wait()


def test_nothing_to_kill(tmp_path: Path) -> None:
    assert kill_orphans(tmp_path / "runs", [7]) == []
