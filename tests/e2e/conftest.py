"""End to end: the real API and workers as processes, real roots running the real agent.

``Fleet`` is one Hearth installation for a test module: a fresh PostgreSQL
database, a Redis database of its own, a bare repo for the tenant made from
``example-config-repo``, appliance roots cloned from the cached Debian image,
``hearth serve`` on a free loopback port and any number of ``hearth worker``
processes. ``Fleet.tick_agents`` plays the systemd timer each root would have
(no init system runs in a root): it runs the agent once inside each root, and
the agent posts its heartbeat to the API over loopback.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from engine.appliances.image import build_image
from engine.appliances.sim import clone_roots, remove_roots
from engine.db import appliances, tenants
from engine.db.migrate import apply_migrations
from engine.db.pool import connect
from engine.repos.store import RepoStore, signature
from tests.db.pg import Databases, run_sync
from tests.services import private_redis

ROOT = Path(__file__).resolve().parents[2]
TENANT = "brightsmile"
VAULT_PASSWORD = "hearth-demo-vault-password"
AUTHOR = signature("Test Operator", "operator@example.org")
HEARTBEAT_INTERVAL = 2.0
RESYNC_INTERVAL = 15.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Fleet:
    env: dict[str, str]
    redis_url: str
    """A Redis server of the fleet's own: the FLUSHALL scenario cannot reach anyone else's."""
    roots: dict[str, Path]
    api_url: str
    store: RepoStore
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api: subprocess.Popen[bytes] | None = None
    logs: Path = Path()
    _agents_stop: threading.Event = field(default_factory=threading.Event)
    _agents_thread: threading.Thread | None = None
    handles: list[Any] = field(default_factory=list)

    # ---- processes -------------------------------------------------------
    def start_worker(self, name: str, *options: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{name}.log", "ab")
        self.handles.append(log)
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "worker",
             "--heartbeat-interval", str(HEARTBEAT_INTERVAL),
             "--resync-interval", str(RESYNC_INTERVAL),
             "--roots-dir", str(Path(self.env["HEARTH_DATA_DIR"]) / "appliances"), *options],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(process)
        return process

    def stop_processes(self) -> None:
        self.stop_agents()
        for process in [*self.workers, *([self.api] if self.api else [])]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.workers, *([self.api] if self.api else [])]:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for handle in self.handles:
            handle.close()

    # ---- agents ----------------------------------------------------------
    def run_agent(self, name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["chroot", str(self.roots[name]), "python3",
                               "/usr/local/bin/hearth-agent", "--once"],
                              capture_output=True, text=True, timeout=60, check=False)

    def start_agents(self) -> None:
        def loop() -> None:
            while not self._agents_stop.is_set():
                for name, root in self.roots.items():
                    if (root / "etc/hearth/agent.token").exists():
                        self.run_agent(name)
                self._agents_stop.wait(HEARTBEAT_INTERVAL)

        self._agents_stop.clear()
        self._agents_thread = threading.Thread(target=loop, daemon=True)
        self._agents_thread.start()

    def stop_agents(self) -> None:
        self._agents_stop.set()
        if self._agents_thread is not None:
            self._agents_thread.join(timeout=60)

    # ---- reading state ---------------------------------------------------
    def sql(self, query: str, *args: Any) -> list[dict[str, Any]]:
        async def run() -> list[dict[str, Any]]:
            conn = await connect(self.env["DATABASE_URL"])  # with Hearth's JSON codecs
            try:
                return [dict(r) for r in await conn.fetch(query, *args)]
            finally:
                await conn.close()

        return run_sync(run())

    def status(self, name: str) -> dict[str, Any]:
        rows = self.sql(
            """SELECT a.name, s.sync, s.health, s.desired_revision, s.applied_revision,
                      s.conditions, s.last_run_id
                 FROM appliances a LEFT JOIN appliance_status s ON s.appliance_id = a.id
                WHERE a.name = $1""", name)
        return rows[0]

    def runs(self) -> list[dict[str, Any]]:
        return self.sql(
            """SELECT r.id, r.status, r.revision, r.trigger, r.worker_id, r.started_at,
                      r.finished_at, r.check_mode, r.error,
                      array(SELECT a.name FROM appliances a WHERE a.id = ANY(r.appliances)
                            ORDER BY a.name) AS names
                 FROM reconcile_runs r ORDER BY r.id""")

    def head(self) -> str:
        head = self.store.head(TENANT)
        assert head is not None
        return head

    def converged(self, name: str, revision: str | None = None) -> bool:
        status = self.status(name)
        revision = revision or self.head()
        return (status["sync"] == "Synced" and status["health"] == "Healthy"
                and status["applied_revision"] == revision
                and status["desired_revision"] == revision)

    def commit(self, files: dict[str, bytes | None], message: str) -> str:
        return self.store.commit_files(TENANT, files, message=message, author=AUTHOR,
                                       expected_head=self.head())

    def read(self, path: str) -> str:
        repo = self.store.open(TENANT)
        return repo[self.head()].tree[path].data.decode()

    def wait_for(self, predicate: Callable[[], bool], *, timeout: float, what: str) -> float:
        """Poll until ``predicate``; returns the seconds it took. Fails with the logs' tail."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if predicate():
                return time.monotonic() - started
            time.sleep(0.25)
        tails = []
        for log in sorted(self.logs.glob("*.log")):
            tails.append(f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:])
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n"
                    f"statuses: {[self.status(n) for n in self.roots]}\n"
                    f"runs: {self.runs()[-5:]}\n" + "\n".join(tails))


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("end-to-end tests need root (chroot into appliance roots)")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    _need_root()
    with private_redis() as redis_url:
        yield from _fleet(tmp_path_factory, redis_url)


def _fleet(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("e2e")
    databases = Databases()
    dsn = databases.create()
    run_sync(apply_migrations(dsn))
    port = _free_port()
    env = dict(os.environ,
               DATABASE_URL=dsn, REDIS_URL=redis_url, OLLAMA_API_URL="http://127.0.0.1:9",
               SECRET_KEY="e2e-secret-key-0123456789abcdef-0123456789",
               JWT_SECRET="e2e-jwt-secret-0123456789abcdef-0123456789",
               ANSIBLE_VAULT_PASSWORD=VAULT_PASSWORD, REPOS_DIR=str(base / "repos"),
               HEARTH_DATA_DIR=str(base / "data"), HEARTH_API_URL=f"http://127.0.0.1:{port}",
               HEARTH_LOG_LEVEL=os.environ.get("HEARTH_TEST_E2E_LOG_LEVEL", "INFO"))
    store = RepoStore(Path(env["REPOS_DIR"]))
    store.create(TENANT, ROOT / "example-config-repo", author=AUTHOR)
    names = ["front-office", "lab"]

    async def seed() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            row = await tenants.insert_tenant(conn, name=TENANT, display_name="Bright Smile")
            for name in names:
                await appliances.register_appliance(conn, tenant_id=row["id"], name=name,
                                                    hostname=f"{name}.brightsmile.example",
                                                    secret_key=env["SECRET_KEY"])
        finally:
            await conn.close()

    run_sync(seed())
    image = build_image(cache_dir=Path(os.environ.get("HEARTH_IMAGE_CACHE",
                                                      "/var/lib/hearth/images")))
    roots_dir = Path(env["HEARTH_DATA_DIR"]) / "appliances" / TENANT
    roots = dict(zip(names, clone_roots(image, roots_dir, names), strict=True))
    logs = base / "logs"
    logs.mkdir()
    fleet = Fleet(env=env, redis_url=redis_url, roots=roots, api_url=env["HEARTH_API_URL"],
                  store=store, logs=logs)
    api_log = open(logs / "api.log", "ab")
    fleet.handles.append(api_log)
    fleet.api = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], env=env, stdout=api_log, stderr=subprocess.STDOUT)
    fleet.wait_for(lambda: _answers(port), timeout=60, what="the API to answer")
    try:
        yield fleet
    finally:
        fleet.stop_processes()
        remove_roots(roots_dir)
        databases.drop_all()


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False
