"""``hearth demo``: the README's run command. The API, a worker and a demo tenant, converging.

It prepares everything a fresh machine lacks and is safe to run again:

1. settings: the environment wins; what is missing gets a local default
   (PostgreSQL and Redis on 127.0.0.1, REPOS_DIR and HEARTH_DATA_DIR under
   /var/lib/hearth) and secrets are generated once into
   ``$HEARTH_DATA_DIR/demo.env`` (0600), so a rerun keeps its tokens;
2. migrations, the tenant ``brightsmile`` from ``example-config-repo/``, an
   ``admin`` person (password printed once, kept in demo.env), and the
   appliances of the example repo registered;
3. the Debian appliance image (debootstrap; cached) and one root per
   appliance under ``$HEARTH_DATA_DIR/appliances/brightsmile/``;
4. ``hearth serve`` and ``hearth worker`` as child processes, and the agents'
   timer: no init system runs in a root, so this process runs each root's
   agent (``chroot ROOT python3 /usr/local/bin/hearth-agent --once``) every
   heartbeat interval, as systemd's timer would on a real box;
5. a status table, printed again only when it changes (an appliance with no
   status yet reads "first run in progress"), until every appliance is Synced
   and Healthy at the head of main; then it keeps running (Ctrl-C stops
   everything). The API and the worker are supervised: one that stops is
   reported with its exit code or signal and started again with backoff.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TENANT = "brightsmile"
DEFAULTS = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/hearth",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "OLLAMA_API_URL": "http://127.0.0.1:11434",
    "OLLAMA_MODEL": "llama3.2:3b",
    "HEARTH_DATA_DIR": "/var/lib/hearth",
    "HEARTH_API_URL": "http://127.0.0.1:8000",
}
GENERATED = ("SECRET_KEY", "JWT_SECRET", "HEARTH_DEMO_ADMIN_PASSWORD")
DEMO_VAULT_PASSWORD = "hearth-demo-vault-password"  # noqa: S105 - public demo value
"""The example repo's vault values are encrypted with this (a demo value, not a secret)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser("demo", help="run the API, a worker and the demo tenant")
    demo.add_argument("--appliances", nargs="*", default=None,
                      help="appliance names to bring up (default: all of the example repo)")
    demo.add_argument("--heartbeat-interval", type=float, default=10.0)
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--exit-when-converged", action="store_true",
                      help="stop once every appliance is Synced and Healthy (for CI smoke runs)")
    demo.set_defaults(handler=_demo)


def _log(message: str) -> None:
    print(f"\033[1m[demo]\033[0m {message}", flush=True)


def demo_environment(port: int) -> dict[str, str]:
    """The environment of the demo: os.environ, then demo.env, then defaults."""
    env = dict(os.environ)
    data_dir = Path(env.get("HEARTH_DATA_DIR") or DEFAULTS["HEARTH_DATA_DIR"])
    data_dir.mkdir(parents=True, exist_ok=True)
    demo_env = data_dir / "demo.env"
    stored: dict[str, str] = {}
    if demo_env.exists():
        for line in demo_env.read_text().splitlines():
            key, _, value = line.partition("=")
            if key:
                stored[key] = value
    for key in GENERATED:
        stored.setdefault(key, secrets.token_urlsafe(24))
    fd = os.open(demo_env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{k}={v}\n" for k, v in sorted(stored.items()))
    for key, value in {**DEFAULTS, **stored}.items():
        env.setdefault(key, value)
    env.setdefault("ANSIBLE_VAULT_PASSWORD", DEMO_VAULT_PASSWORD)
    env.setdefault("REPOS_DIR", str(data_dir / "repos"))
    env["HEARTH_API_URL"] = f"http://127.0.0.1:{port}"
    return env


async def _prepare(env: dict[str, str], names: list[str] | None) -> list[str]:
    # imported when the command runs: keeps `hearth --help` fast
    from engine import tenant_vault
    from engine.db import appliances, people, tenants
    from engine.db.migrate import apply_migrations
    from engine.db.pool import create_pool
    from engine.errors import NotFoundError
    from engine.repos.reader import SnapshotReader
    from engine.repos.store import RepoStore, signature
    from engine.settings import load_settings

    settings = load_settings(env)
    await apply_migrations(settings.database_url)
    store = RepoStore(settings.repos_dir)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            tenant = await tenants.get_tenant_by_name(conn, TENANT)
            if tenant is None:
                if not store.exists(TENANT):
                    store.create(TENANT, ROOT / "example-config-repo",
                                 author=signature("hearth demo", "demo@hearth.invalid"))
                tenant = await tenants.insert_tenant(conn, name=TENANT,
                                                     display_name="Bright Smile Dental")
                # example-config-repo's values are encrypted with the demo password
                await tenant_vault.store_initial(conn, settings, tenant_id=tenant["id"],
                                                 password=settings.ansible_vault_password)
                _log(f"tenant {TENANT} created from example-config-repo")
            if await people.get_credentials(conn, "admin") is None:
                await people.insert_person(conn, username="admin", is_admin=True,
                                           password=env["HEARTH_DEMO_ADMIN_PASSWORD"])
            snapshot = SnapshotReader().load(store.open(TENANT), store.head(TENANT) or "",
                                             tenant=TENANT)
            wanted = names or snapshot.appliance_names()
            for name in wanted:
                try:
                    await appliances.get_appliance_by_name(conn, tenant_id=tenant["id"],
                                                           name=name)
                except NotFoundError:
                    await appliances.register_appliance(
                        conn, tenant_id=tenant["id"], name=name,
                        hostname=snapshot.desired(name).hostname,
                        secret_key=settings.secret_key)
                    _log(f"appliance {name} registered (its agent gets a token on first run)")
    finally:
        await pool.close()
    return wanted


def _roots(env: dict[str, str], names: list[str]) -> dict[str, Path]:
    # imported when the command runs: keeps `hearth --help` fast
    from engine.appliances.image import build_image
    from engine.appliances.sim import clone_roots

    data_dir = Path(env["HEARTH_DATA_DIR"])
    started = time.monotonic()
    _log("appliance image: building with debootstrap if not cached (about 3 minutes once)")
    image = build_image(cache_dir=data_dir / "images")
    _log(f"appliance image ready ({image.name}, {time.monotonic() - started:.0f} s)")
    dest = data_dir / "appliances" / TENANT
    missing = [n for n in names if not (dest / n / "etc").is_dir()]
    if missing:
        clone_roots(image, dest, missing)
        _log(f"appliance roots cloned: {', '.join(missing)}")
    return {name: dest / name for name in names}


async def _agents(roots: dict[str, Path], interval: float, stop: asyncio.Event) -> None:
    """The systemd timer of each root: run its agent once per interval."""
    while not stop.is_set():
        for root in roots.values():
            if (root / "usr/local/bin/hearth-agent").exists() and (
                    root / "etc/hearth/agent.token").exists():
                process = await asyncio.create_subprocess_exec(
                    "chroot", str(root), "python3", "/usr/local/bin/hearth-agent", "--once",
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
                await process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


async def _status(env: dict[str, str]) -> list[dict[str, object]]:
    # imported when the command runs: keeps `hearth --help` fast
    from engine.db import appliances, tenants
    from engine.db.pool import create_pool

    pool = await create_pool(env["DATABASE_URL"], min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            tenant = await tenants.require_tenant(conn, TENANT)
            return await appliances.status_rows(conn, tenant_id=tenant["id"])
    finally:
        await pool.close()


def _table(rows: list[dict[str, object]], head: str | None) -> str:
    """The fleet's status; an appliance with no status yet says so instead of placeholders."""
    lines = [f"  {'APPLIANCE':<14} {'SYNC':<10} {'HEALTH':<12} {'APPLIED':<13} main={str(head)[:12]}"]
    for row in rows:
        if row["sync"] is None:
            lines.append(f"  {row['name']!s:<14} first run in progress")
            continue
        applied = str(row["applied_revision"])[:12] if row["applied_revision"] else "-"
        lines.append(f"  {row['name']!s:<14} {row['sync']!s:<10} {row['health'] or '-'!s:<12} "
                     f"{applied:<13}")
    return "\n".join(lines)


@dataclass
class Child:
    """One supervised process of the demo: how to start it, and what became of it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    restart_at: float | None = None


def exit_reason(returncode: int) -> str:
    """``returncode`` of a child in words: "exit code 3" or "killed by SIGKILL"."""
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-returncode).name}"
        return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class Supervisor:
    """Keeps the demo's API and worker running: a child that stops is started again.

    Backoff doubles from 1 s up to ``max_backoff`` for a child that keeps dying,
    and starts over once it has stayed up ``stable_after`` seconds; every stop
    is reported with the child's name and why it stopped.
    """

    def __init__(self, children: list[Child], *, max_backoff: float = 30.0,
                 stable_after: float = 60.0, report: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.children = children
        self.max_backoff = max_backoff
        self.stable_after = stable_after
        self.report = report
        self.clock = clock

    def start_all(self) -> None:
        for child in self.children:
            self._start(child)

    def _start(self, child: Child) -> None:
        if child.log is not None:
            with open(child.log, "ab") as log:  # the child keeps its own copy of the fd
                child.process = subprocess.Popen(child.argv, env=child.env, stdout=log,
                                                 stderr=subprocess.STDOUT)
        else:
            child.process = subprocess.Popen(child.argv, env=child.env)
        child.started_at = self.clock()
        child.restart_at = None

    def check(self) -> None:
        """Notice stopped children and restart those whose backoff has passed."""
        now = self.clock()
        for child in self.children:
            if child.process is not None and child.restart_at is None:
                code = child.process.poll()
                if code is None:
                    continue
                if now - child.started_at >= self.stable_after:
                    child.restarts = 0
                delay = min(2.0 ** child.restarts, self.max_backoff)
                child.restarts += 1
                child.restart_at = now + delay
                where = f"; its log: {child.log}" if child.log else ""
                self.report(f"{child.name} stopped ({exit_reason(code)}); restarting in "
                            f"{delay:.0f} s{where}")
            if child.restart_at is not None and now >= child.restart_at:
                self._start(child)
                self.report(f"{child.name} restarted (pid {child.process.pid})")  # type: ignore[union-attr]

    def stop_all(self, timeout: float = 15.0) -> None:
        running = [c.process for c in self.children
                   if c.process is not None and c.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _children(env: dict[str, str], args: argparse.Namespace) -> list[Child]:
    hearth = [sys.executable, "-m", "engine.cli"]
    # The API (acknowledgements, Missing) and the worker (agents, Missing) share one interval.
    env = {**env, "HEARTH_HEARTBEAT_INTERVAL": str(args.heartbeat_interval)}
    logs = Path(env["HEARTH_DATA_DIR"]) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    _log(f"API log: {logs / 'api.log'}")
    return [
        Child("api", [*hearth, "serve", "--port", str(args.port)], env, log=logs / "api.log"),
        Child("worker", [*hearth, "worker", "--resync-interval", "60",
                         "--roots-dir", str(Path(env["HEARTH_DATA_DIR"]) / "appliances")], env),
    ]


async def _run(args: argparse.Namespace) -> int:
    # imported when the command runs: keeps `hearth --help` fast
    from engine.repos.store import RepoStore

    env = demo_environment(args.port)
    names = await _prepare(env, args.appliances)
    roots = await asyncio.to_thread(_roots, env, names)
    supervisor = Supervisor(_children(env, args), report=_log)
    supervisor.start_all()
    _log(f"API on {env['HEARTH_API_URL']} (OpenAPI UI at /schema/swagger, web console at "
         f"{env['HEARTH_API_URL']}/ui/); "
         f"log in as admin with the password in {env['HEARTH_DATA_DIR']}/demo.env "
         "(HEARTH_DEMO_ADMIN_PASSWORD)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    agents = asyncio.create_task(_agents(roots, args.heartbeat_interval, stop))
    store = RepoStore(Path(env["REPOS_DIR"]))
    started = time.monotonic()
    converged_at: float | None = None
    shown = ""
    was_done = False
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 2)
            supervisor.check()
            head = store.head(TENANT)
            try:
                rows = await _status(env)
            except OSError as exc:
                _log(f"cannot read status yet: {exc}")
                continue
            table = _table(rows, head)
            if table != shown:  # the table once, then only when something changed
                print(table, flush=True)
                shown = table
            done = rows and all(r["sync"] == "Synced" and r["health"] == "Healthy"
                                and r["applied_revision"] == head for r in rows)
            if done and not was_done:
                if converged_at is None:
                    converged_at = time.monotonic()
                    _log(f"all {len(rows)} appliances converged in "
                         f"{converged_at - started:.0f} s; edit the tenant repo or break a root "
                         "to watch Hearth react (Ctrl-C stops)")
                    if args.exit_when_converged:
                        return 0
                else:
                    _log(f"all {len(rows)} appliances Synced and Healthy again at "
                         f"{str(head)[:12]}")
            was_done = bool(done)
    finally:
        stop.set()
        await agents
        supervisor.stop_all()
    return 0


def _demo(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("hearth demo needs root (debootstrap and chroot build the appliance roots)",
              file=sys.stderr)
        return 2
    if shutil.which("debootstrap") is None:
        print("hearth demo needs debootstrap: apt-get install debootstrap", file=sys.stderr)
        return 2
    return asyncio.run(_run(args))
