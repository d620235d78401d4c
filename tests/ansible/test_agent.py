"""The heartbeat agent on its own: schema, sequence, posting with retries, secrecy.

The agent is one stdlib-only file run on the appliance's python3; here it runs
on this machine (whatever it finds here is its observed state) and is imported
as a module for the posting logic. The e2e tests run it inside real roots.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from schemas.heartbeat import Heartbeat

AGENT = Path(__file__).resolve().parents[2] / "ansible/roles/agent/files/hearth-agent.py"


@pytest.fixture(scope="module")
def agent() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hearth_agent", AGENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(tmp_path: Path, **extra: Any) -> Path:
    path = tmp_path / "agent.json"
    path.write_text(json.dumps({"state_dir": str(tmp_path / "state"),
                                "token_file": str(tmp_path / "token"), **extra}))
    return path


def _print(config: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(AGENT), "--once", "--print", "--config",
                           str(config)], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(proc.stdout)


def test_output_validates_as_heartbeat_and_sequence_persists(tmp_path: Path) -> None:
    config = _config(tmp_path)
    first = _print(config)
    heartbeat = Heartbeat.model_validate(first)
    assert heartbeat.sequence == 1
    assert heartbeat.sent_at.tzinfo is not None
    second = _print(config)
    assert second["sequence"] == 2
    assert (tmp_path / "state/sequence").read_text() == "2\n"
    # applied_run only once a run recorded one (an API from before the field takes the rest)
    assert set(first) == set(Heartbeat.model_fields) - {"applied_run"}


def test_the_run_that_converged_the_box_is_reported_only_when_well_formed(
        tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state/applied-run").write_text("42\n")
    printed = _print(config)
    assert printed["applied_run"] == 42
    assert set(printed) == set(Heartbeat.model_fields)
    assert Heartbeat.model_validate(printed).applied_run == 42
    for bad in ("0\n", "-3\n", "forty-two\n", ""):
        (tmp_path / "state/applied-run").write_text(bad)
        assert "applied_run" not in _print(config), bad


def test_applied_revision_is_reported_only_when_well_formed(tmp_path: Path) -> None:
    config = _config(tmp_path)
    (tmp_path / "state").mkdir()
    (tmp_path / "state/applied-revision").write_text("a" * 40 + "\n")
    assert _print(config)["applied_revision"] == "a" * 40
    (tmp_path / "state/applied-revision").write_text("not-a-revision\n")
    assert _print(config)["applied_revision"] is None


class _Api(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[str, dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.headers["Authorization"], json.loads(body)))
        status = self.answers.pop(0) if self.answers else 200
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps({"accepted_sequence": 1, "desired_revision": None,
                                     "next_interval_seconds": 30}).encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Any:
    _Api.answers, _Api.received = [], []
    server = HTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_posts_with_token_and_retries_server_errors(tmp_path: Path, api: HTTPServer) -> None:
    _Api.answers = [503, 500]
    port = api.server_address[1]
    config = _config(tmp_path, api_url=f"http://127.0.0.1:{port}")
    (tmp_path / "token").write_text("secret-token-value\n")
    proc = subprocess.run([sys.executable, str(AGENT), "--once", "--config", str(config)],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert len(_Api.received) == 3
    assert {auth for auth, _ in _Api.received} == {"Bearer secret-token-value"}
    assert "secret-token-value" not in proc.stdout + proc.stderr
    Heartbeat.model_validate(_Api.received[-1][1])


def test_a_runs_own_report_tries_once(tmp_path: Path, api: HTTPServer) -> None:
    """``--once --attempts 1``, the run's last task: one post, no backoff, exit 1."""
    _Api.answers = [503]
    config = _config(tmp_path, api_url=f"http://127.0.0.1:{api.server_address[1]}")
    (tmp_path / "token").write_text("secret-token-value\n")
    proc = subprocess.run([sys.executable, str(AGENT), "--once", "--attempts", "1", "--config",
                           str(config)], capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 1
    assert len(_Api.received) == 1


def test_reports_of_one_box_wait_for_each_other(tmp_path: Path, api: HTTPServer) -> None:
    """A run's own report started while the timer's is going posts after it, not before."""
    config = _config(tmp_path, api_url=f"http://127.0.0.1:{api.server_address[1]}")
    (tmp_path / "token").write_text("secret-token-value\n")
    (tmp_path / "state").mkdir()
    with open(tmp_path / "state/report.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the other report, still going
        proc = subprocess.Popen([sys.executable, str(AGENT), "--once", "--attempts", "1",
                                 "--config", str(config)], stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        assert proc.poll() is None and _Api.received == []
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert len(_Api.received) == 1


def test_client_errors_are_not_retried(agent: ModuleType, api: HTTPServer) -> None:
    _Api.answers = [401]
    url = f"http://127.0.0.1:{api.server_address[1]}/api/v1/heartbeat"
    with pytest.raises(agent.PermanentError):
        agent.post_with_retries(url, "t", b"{}", sleep=lambda _: None)
    assert len(_Api.received) == 1


def test_backoff_grows_and_is_jittered(agent: ModuleType) -> None:
    delays: list[float] = []
    with pytest.raises(OSError):
        agent.post_with_retries("http://127.0.0.1:9/api/v1/heartbeat", "t", b"{}",
                                attempts=5, base=1.0, cap=8.0, sleep=delays.append)
    assert len(delays) == 4
    assert all(0 <= d <= min(8.0, 2 ** i) for i, d in enumerate(delays))
