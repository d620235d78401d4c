"""The demo's supervisor: a child that dies is named, explained and started again.

Real child processes (small Python programs), a clock the test moves.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from engine.demo import Child, Supervisor, _table, exit_reason


def _wait_exit(child: Child) -> None:
    assert child.process is not None
    child.process.wait(timeout=10)


def test_a_killed_child_is_reported_and_restarted_with_backoff() -> None:
    now = [100.0]
    messages: list[str] = []
    worker = Child("worker", [sys.executable, "-c", "import time; time.sleep(60)"],
                   dict(os.environ))
    supervisor = Supervisor([worker], report=messages.append, clock=lambda: now[0],
                            stable_after=60.0)
    supervisor.start_all()
    try:
        first = worker.process
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        _wait_exit(worker)
        supervisor.check()
        assert messages == ["worker stopped (killed by SIGKILL); restarting in 1 s"]
        assert worker.process is first  # not yet: the backoff holds
        now[0] += 1.0
        supervisor.check()
        assert worker.process is not first and worker.process.poll() is None
        assert messages[-1] == f"worker restarted (pid {worker.process.pid})"
        # Dying again soon after: the delay doubles.
        worker.process.send_signal(signal.SIGTERM)
        _wait_exit(worker)
        now[0] += 5.0
        supervisor.check()
        assert messages[-1] == "worker stopped (killed by SIGTERM); restarting in 2 s"
        now[0] += 2.0
        supervisor.check()
        assert worker.process.poll() is None
        # Up for longer than stable_after: the backoff starts over.
        now[0] += 61.0
        worker.process.kill()
        _wait_exit(worker)
        supervisor.check()
        assert messages[-1] == "worker stopped (killed by SIGKILL); restarting in 1 s"
    finally:
        supervisor.stop_all(timeout=5)
    assert worker.process.poll() is not None


def test_an_exit_code_is_reported_and_the_other_child_is_left_alone(tmp_path) -> None:
    now = [0.0]
    messages: list[str] = []
    api = Child("api", [sys.executable, "-c", "import sys; print('bad settings'); sys.exit(3)"],
                dict(os.environ), log=tmp_path / "api.log")
    worker = Child("worker", [sys.executable, "-c", "import time; time.sleep(60)"],
                   dict(os.environ))
    supervisor = Supervisor([api, worker], report=messages.append, clock=lambda: now[0])
    supervisor.start_all()
    try:
        _wait_exit(api)
        worker_pid = worker.process.pid
        supervisor.check()
        assert messages == [f"api stopped (exit code 3); restarting in 1 s; its log: "
                            f"{tmp_path / 'api.log'}"]
        assert worker.process.pid == worker_pid and worker.process.poll() is None
        deadline = time.monotonic() + 10
        while "bad settings" not in (tmp_path / "api.log").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        supervisor.stop_all(timeout=5)


def test_exit_reasons_in_words() -> None:
    assert exit_reason(0) == "exit code 0"
    assert exit_reason(2) == "exit code 2"
    assert exit_reason(-9) == "killed by SIGKILL"
    assert exit_reason(-15) == "killed by SIGTERM"


def test_the_table_says_first_run_instead_of_placeholders() -> None:
    rows = [
        {"name": "front-office", "sync": None, "health": None, "applied_revision": None},
        {"name": "lab", "sync": "Synced", "health": "Healthy", "applied_revision": "a" * 40},
        {"name": "branch", "sync": "OutOfSync", "health": "Progressing",
         "applied_revision": None},
    ]
    assert _table(rows, "b" * 40).splitlines() == [
        "  APPLIANCE      SYNC       HEALTH       APPLIED       main=bbbbbbbbbbbb",
        "  front-office   first run in progress",
        "  lab            Synced     Healthy      aaaaaaaaaaaa ",
        "  branch         OutOfSync  Progressing  -            ",
    ]
    assert "None" not in _table(rows, None).split("main=")[0]
    assert "Unknown" not in _table(rows, "b" * 40)
