"""How the agent talks to the API: https unless loopback, a private CA, no redirects,
Retry-After and next_interval_seconds honoured (the timer's ``--when-due`` mode).

The agent runs here as a subprocess (or imported, for the retry loop) against local
HTTP(S) servers that record what reached them; certificates are made with the
openssl CLI.
"""

from __future__ import annotations

import importlib.util
import json
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

AGENT = Path(__file__).resolve().parents[2] / "ansible/roles/agent/files/hearth-agent.py"
ACK = {"accepted_sequence": 1, "desired_revision": None, "next_interval_seconds": 30}


@pytest.fixture(scope="module")
def agent() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hearth_agent_transport", AGENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Recorder(BaseHTTPRequestHandler):
    """Answers each request with the next of ``answers`` (status, headers), 200 + ACK after;
    records (method, path, Authorization) of every request."""

    answers: list[tuple[int, dict[str, str]]]
    received: list[tuple[str, str, str | None]]

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.received.append((self.command, self.path, self.headers.get("Authorization")))
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(ACK).encode())

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


def serve(host: str = "127.0.0.1", context: ssl.SSLContext | None = None
          ) -> tuple[HTTPServer, type[Recorder]]:
    handler = type("Handler", (Recorder,), {"answers": [], "received": []})
    server = HTTPServer((host, 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


@pytest.fixture
def servers() -> Iterator[list[HTTPServer]]:
    started: list[HTTPServer] = []
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


def run_agent(tmp_path: Path, *args: str, **config: Any) -> subprocess.CompletedProcess[str]:
    (tmp_path / "token").write_text("secret-token-value\n")
    path = tmp_path / "agent.json"
    path.write_text(json.dumps({"state_dir": str(tmp_path / "state"),
                                "token_file": str(tmp_path / "token"), **config}))
    return subprocess.run([sys.executable, str(AGENT), *args, "--config", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)


# --------------------------------------------------------------------------- #
# https unless loopback
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(("url", "accepted"), [
    ("https://hearth.example.com", True),
    ("https://hearth.example.com:8443/", True),
    ("http://127.0.0.1:8000", True),
    ("http://127.9.8.7", True),
    ("http://localhost:8000", True),
    ("http://[::1]:8000", True),
    ("http://hearth.example.com", False),
    ("http://192.0.2.2:8000", False),
    ("http://[fd00::2]:8000", False),
    ("http://127.0.0.1.nip.io", False),
    ("ftp://hearth.example.com", False),
    ("file:///etc/shadow", False),
    ("https://user:password@hearth.example.com", False),
    ("", False),
], ids=lambda value: str(value))
def test_api_url_must_be_https_unless_loopback(agent: ModuleType, url: str,
                                               accepted: bool) -> None:
    if accepted:
        assert agent.api_base(url) == url.rstrip("/")
    else:
        with pytest.raises(agent.ConfigError):
            agent.api_base(url)


def test_plain_http_to_a_remote_host_sends_nothing(tmp_path: Path,
                                                   servers: list[HTTPServer]) -> None:
    # an address of this machine that is not loopback (its own interface)
    address = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"],
                             capture_output=True, text=True, check=True).stdout.split()[3]
    server, handler = serve(host=address.partition("/")[0])
    servers.append(server)
    proc = run_agent(tmp_path, "--once", api_url=f"http://{server.server_address[0]}:"
                                                 f"{server.server_port}")
    assert proc.returncode == 2, proc.stderr
    assert "api_url must use https" in proc.stderr
    assert handler.received == []


# --------------------------------------------------------------------------- #
# redirects
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_refused_and_the_token_goes_nowhere(tmp_path: Path, status: int,
                                                          servers: list[HTTPServer]) -> None:
    elsewhere, collected = serve()
    api, handler = serve()
    servers += [elsewhere, api]
    handler.answers = [(status, {"Location": f"http://127.0.0.1:{elsewhere.server_port}/x"})]
    proc = run_agent(tmp_path, "--once", api_url=f"http://127.0.0.1:{api.server_port}")
    assert proc.returncode == 1
    assert f"HTTP {status}" in proc.stderr and "redirects are refused" in proc.stderr
    assert len(handler.received) == 1
    assert collected.received == []


# --------------------------------------------------------------------------- #
# a private CA
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private CA and a server certificate for 127.0.0.1 signed by it."""
    d = tmp_path_factory.mktemp("pki")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=Vendor test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                               "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf")
    return {"ca": d / "ca.crt", "cert": d / "server.crt", "key": d / "server.key"}


@pytest.fixture
def https_api(pki: dict[str, Path], servers: list[HTTPServer]) -> tuple[HTTPServer, type[Recorder]]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["cert"], pki["key"])
    server, handler = serve(context=context)
    servers.append(server)
    return server, handler


def test_a_private_ca_bundle_is_trusted(tmp_path: Path, pki: dict[str, Path],
                                        https_api: tuple[HTTPServer, type[Recorder]]) -> None:
    server, handler = https_api
    proc = run_agent(tmp_path, "--once", api_url=f"https://127.0.0.1:{server.server_port}",
                     ca_file=str(pki["ca"]))
    assert proc.returncode == 0, proc.stderr
    assert handler.received == [("POST", "/api/v1/heartbeat", "Bearer secret-token-value")]


def test_without_the_ca_bundle_the_server_is_not_trusted(
        tmp_path: Path, https_api: tuple[HTTPServer, type[Recorder]]) -> None:
    server, handler = https_api
    proc = run_agent(tmp_path, "--once", api_url=f"https://127.0.0.1:{server.server_port}")
    assert proc.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in proc.stderr
    assert handler.received == []


def test_a_missing_ca_bundle_is_a_configuration_error(tmp_path: Path) -> None:
    proc = run_agent(tmp_path, "--once", api_url="https://127.0.0.1:9",
                     ca_file=str(tmp_path / "missing.pem"))
    assert proc.returncode == 2
    assert "cannot load ca_file" in proc.stderr


# --------------------------------------------------------------------------- #
# Retry-After and next_interval_seconds
# --------------------------------------------------------------------------- #


def test_a_short_retry_after_is_slept_exactly(agent: ModuleType,
                                              servers: list[HTTPServer]) -> None:
    api, handler = serve()
    servers.append(api)
    handler.answers = [(429, {"Retry-After": "2"}), (503, {"Retry-After": "7"})]
    delays: list[float] = []
    ack = agent.post_with_retries(f"http://127.0.0.1:{api.server_port}/api/v1/heartbeat", "t",
                                  b"{}", sleep=delays.append)
    assert ack == ACK
    assert delays == [2, 7]


def _due(tmp_path: Path) -> float:
    return float((tmp_path / "state/next-due").read_text())


def test_timer_mode_reports_only_when_due_at_the_apis_interval(
        tmp_path: Path, servers: list[HTTPServer]) -> None:
    api, handler = serve()
    servers.append(api)
    url = f"http://127.0.0.1:{api.server_port}"
    before = time.time()
    first = run_agent(tmp_path, "--when-due", api_url=url, interval_seconds=600)
    assert first.returncode == 0, first.stderr
    assert len(handler.received) == 1
    # the API said 30 s (the configuration 600): due in 30 s +- 5 % from the run's start
    assert before + 28.5 <= _due(tmp_path) <= time.time() + 31.5
    again = run_agent(tmp_path, "--when-due", api_url=url, interval_seconds=600)
    assert again.returncode == 0 and again.stderr == ""
    assert len(handler.received) == 1
    (tmp_path / "state/next-due").write_text(f"{time.time() - 1:.3f}\n")
    assert run_agent(tmp_path, "--when-due", api_url=url).returncode == 0
    assert len(handler.received) == 2


def test_timer_mode_waits_a_long_retry_after_out_of_process(
        tmp_path: Path, servers: list[HTTPServer]) -> None:
    api, handler = serve()
    servers.append(api)
    handler.answers = [(429, {"Retry-After": "900"})]
    before = time.time()
    proc = run_agent(tmp_path, "--when-due", api_url=f"http://127.0.0.1:{api.server_port}")
    assert proc.returncode == 1
    assert "Retry-After 900 s" in proc.stderr
    assert len(handler.received) == 1  # not retried inside the run
    assert before + 900 <= _due(tmp_path) <= time.time() + 900
    assert run_agent(tmp_path, "--when-due",
                     api_url=f"http://127.0.0.1:{api.server_port}").returncode == 0
    assert len(handler.received) == 1


def test_a_due_time_implausibly_far_away_is_treated_as_due(
        tmp_path: Path, servers: list[HTTPServer]) -> None:
    """A clock that jumped back, or a corrupt file, must not silence the box for days."""
    api, handler = serve()
    servers.append(api)
    (tmp_path / "state").mkdir()
    (tmp_path / "state/next-due").write_text(f"{time.time() + 30 * 86400:.3f}\n")
    assert run_agent(tmp_path, "--when-due",
                     api_url=f"http://127.0.0.1:{api.server_port}").returncode == 0
    assert len(handler.received) == 1
