"""One failing probe costs its own section, never the heartbeat; the planner reads it as
"no evidence", not as "not running" or "empty".

The agent runs here on this machine (imported as a module); a probe is made to raise
by replacing it, the seam the agent looks its probes up through. The planner half
uses the office-1 fixture of the planner tests, converged, so any item is the
effect of the unknown section alone.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from engine.planning.plan import build_plan
from schemas.config import Policies
from schemas.heartbeat import Heartbeat
from schemas.plan import EMPTY_INVENTORY
from tests.planning.helpers import NOW, REVISION, desired_of, load_fixture, observed_of

AGENT = Path(__file__).resolve().parents[2] / "ansible/roles/agent/files/hearth-agent.py"


@pytest.fixture
def agent() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hearth_agent_probes", AGENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _boom() -> Any:
    raise RuntimeError("named.conf parser fell over")


@pytest.mark.parametrize("probe", ["probe_users", "probe_dns", "probe_samba", "probe_mail",
                                   "probe_pki"])
def test_a_raising_probe_marks_its_section_unknown(agent: ModuleType, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    probe: str) -> None:
    monkeypatch.setattr(agent, probe, _boom)
    heartbeat = agent.build_heartbeat(str(tmp_path / "state"))
    section = probe.removeprefix("probe_")
    assert heartbeat["observed"][section] is None
    assert heartbeat["observed"]["unknown"] == {
        section: "RuntimeError: named.conf parser fell over"}
    parsed = Heartbeat.model_validate(heartbeat)
    assert parsed.observed.unknown == {section: "RuntimeError: named.conf parser fell over"}
    assert heartbeat["sequence"] == 1


def test_raising_services_and_facts_probes_leave_them_empty(agent: ModuleType, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agent, "probe_services", _boom)
    monkeypatch.setattr(agent, "probe_facts", _boom)
    heartbeat = agent.build_heartbeat(str(tmp_path / "state"))
    assert heartbeat["services"] == []
    assert heartbeat["facts"] == {}
    assert sorted(heartbeat["observed"]["unknown"]) == ["facts", "services"]
    assert heartbeat["observed"]["users"] is not None
    Heartbeat.model_validate(heartbeat)


def test_a_clean_report_has_no_unknown_field(agent: ModuleType, tmp_path: Path) -> None:
    """Sent only when a probe failed, so an API that predates the field takes the rest."""
    assert "unknown" not in agent.build_heartbeat(str(tmp_path / "state"))["observed"]


class _Api(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        self.received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"accepted_sequence": 1, "desired_revision": null, '
                         b'"next_interval_seconds": 30}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[HTTPServer]:
    _Api.received = []
    server = HTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_heartbeat_still_goes_when_a_probe_raises(agent: ModuleType, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      api: HTTPServer) -> None:
    monkeypatch.setattr(agent, "probe_dns", _boom)
    (tmp_path / "token").write_text("t\n")
    config = {"api_url": f"http://127.0.0.1:{api.server_address[1]}",
              "state_dir": str(tmp_path / "state"), "token_file": str(tmp_path / "token")}
    ack = agent.report_once(config, False)
    assert ack["accepted_sequence"] == 1
    (sent,) = _Api.received
    assert sent["observed"]["unknown"] == {"dns": "RuntimeError: named.conf parser fell over"}
    assert sent["observed"]["users"] is not None


# --------------------------------------------------------------------------- #
# the planner: unknown is no evidence
# --------------------------------------------------------------------------- #


def _plan_rows(observed: dict[str, Any]) -> list[tuple[str, str, tuple[str, ...], str]]:
    plan = build_plan(desired=desired_of(load_fixture("desired_office.yaml")),
                      observed=observed_of(observed), inventory=EMPTY_INVENTORY,
                      policy=Policies(prune=True), revision=REVISION, now=NOW)
    return [(i.domain, i.operation, i.path, i.reason) for i in (*plan.items, *plan.extras)]


@pytest.fixture
def converged() -> dict[str, Any]:
    return copy.deepcopy(load_fixture("observed_office.yaml"))


def test_the_fixture_is_converged(converged: dict[str, Any]) -> None:
    assert _plan_rows(converged) == []


def test_an_unknown_domain_plans_nothing(converged: dict[str, Any]) -> None:
    converged["dns"] = None
    converged["unknown"] = {"dns": "RuntimeError: boom"}
    assert _plan_rows(converged) == []


def test_a_domain_reported_absent_is_still_not_running(converged: dict[str, Any]) -> None:
    converged["dns"] = None
    assert _plan_rows(converged)[0] == ("dns", "add", (), "not running")


def test_unreadable_ssh_keys_are_no_evidence(converged: dict[str, Any]) -> None:
    alice = converged["users"]["users"][0]
    alice["ssh_keys"] = None
    alice["ssh_keys_error"] = "/home/alice/.ssh/authorized_keys is a symlink"
    assert _plan_rows(converged) == []
    alice["ssh_keys"] = []
    del alice["ssh_keys_error"]
    assert _plan_rows(converged) == [("users", "modify", ("users", "alice", "ssh_keys"),
                                      "differs")]
