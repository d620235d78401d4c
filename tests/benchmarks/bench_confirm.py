"""Benchmark: commit -> Synced and drift -> Synced in the demo, and runs per change.

Run as root: ``.venv/bin/python tests/benchmarks/bench_confirm.py [--changes 6]
[--drifts 3] [--heartbeat-interval 10]``

Every part is real: ``hearth demo`` (the API, a worker and the agents' timer, one
report per root per interval, exactly as ``make run``) on a throwaway PostgreSQL
database, a private Redis server and temporary REPOS_DIR / HEARTH_DATA_DIR (the
appliance image cache is shared). After the first convergence:

1. ``--changes`` one-user changes: each adds a user of group ``reception`` to
   ``users.yaml`` with ``RepoStore.commit_files`` (what a push does to the bare
   repo; the worker's watcher sees the ref move), after a random pause of up to one
   heartbeat interval so commits fall anywhere in the timer's cycle. Measured: from
   the commit to every appliance Synced and Healthy with applied = desired = the new
   head (``appliance_status``, read every 100 ms), and the runs started for the
   change (counted until two heartbeat intervals after it was Synced: a second,
   empty self-heal run would start in there).
2. ``--drifts`` drifts: ``userdel`` of a managed user in the ``front-office`` root;
   from then to Synced again (the drift is seen at the next timer report).

Prints each sample, then p50 and max of each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engine.appliances.sim import remove_roots  # noqa: E402
from engine.repos.store import RepoStore, signature  # noqa: E402
from tests.db.pg import Databases  # noqa: E402
from tests.services import free_port, private_redis  # noqa: E402

TENANT = "brightsmile"
AUTHOR = signature("Bench Operator", "bench@example.org")


async def statuses(dsn: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(
            """SELECT a.name, s.sync, s.health, s.desired_revision, s.applied_revision
                 FROM appliances a LEFT JOIN appliance_status s ON s.appliance_id = a.id""")]
    finally:
        await conn.close()


async def runs_after(dsn: str, run_id: int) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(
            "SELECT id, trigger, status FROM reconcile_runs WHERE id > $1 AND NOT check_mode "
            "ORDER BY id", run_id)]
    finally:
        await conn.close()


async def last_run(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM reconcile_runs"))
    finally:
        await conn.close()


async def wait_synced(dsn: str, head: str, *, limit: float = 600) -> float:
    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    while time.monotonic() - started < limit:
        rows = await statuses(dsn)
        if rows and all(r["sync"] == "Synced" and r["health"] == "Healthy"
                        and r["applied_revision"] == head == r["desired_revision"]
                        for r in rows):
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise TimeoutError(f"not Synced at {head[:12]} after {limit:.0f} s: {rows}")


def add_user(store: RepoStore, index: int) -> str:
    head = store.head(TENANT)
    assert head is not None
    users = store.open(TENANT)[head].tree["users.yaml"].data.decode()
    marker = "    - name: olduser\n"
    name = f"bench{index}"
    entry = (f"    - name: {name}\n      full_name: Bench {index}\n"
             f"      email: {name}@brightsmile.example\n      uid: {3500 + index}\n"
             "      groups: [reception]\n      shell: /usr/sbin/nologin\n")
    return store.commit_files(TENANT, {"users.yaml": users.replace(marker, entry + marker)
                                       .encode()}, message=f"Add {name}", author=AUTHOR,
                              expected_head=head)


def summary(label: str, values: list[float]) -> str:
    return (f"{label}: p50 {statistics.median(values):.1f} s, max {max(values):.1f} s "
            f"({', '.join(f'{v:.1f}' for v in values)})")


async def bench(args: argparse.Namespace, dsn: str, env: dict[str, str], data: Path) -> None:
    store = RepoStore(Path(env["REPOS_DIR"]))
    interval = args.heartbeat_interval
    rng = random.Random(args.seed)
    changes, counts = [], []
    for i in range(args.changes):
        await asyncio.sleep(rng.uniform(0, interval))
        before = await last_run(dsn)
        committed = time.monotonic()
        head = await asyncio.to_thread(add_user, store, i)
        await wait_synced(dsn, head)
        took = time.monotonic() - committed
        await asyncio.sleep(2 * interval)
        runs = await runs_after(dsn, before)
        changes.append(took)
        counts.append(len(runs))
        print(f"  change {i}: commit -> Synced {took:.1f} s; runs {[r['trigger'] for r in runs]}",
              flush=True)
    drifts = []
    root = data / "appliances" / TENANT / "front-office"
    for i in range(args.drifts):
        await asyncio.sleep(rng.uniform(0, interval))
        head = store.head(TENANT)
        assert head is not None
        user = f"bench{i}" if i < args.changes else "skim"
        await asyncio.to_thread(subprocess.run, ["chroot", str(root), "userdel", user],
                                check=True)
        drifted = time.monotonic()
        # Synced is read until the next report shows the drift: wait for the repair first.
        while f"\n{user}:" not in "\n" + (root / "etc/passwd").read_text():
            if time.monotonic() - drifted > 600:
                raise TimeoutError(f"{user} never restored")
            await asyncio.sleep(0.1)
        await wait_synced(dsn, head)
        drifts.append(time.monotonic() - drifted)
        print(f"  drift {i}: userdel {user} -> Synced {drifts[-1]:.1f} s", flush=True)
    print(summary(f"commit -> Synced ({args.changes} one-user changes)", changes))
    print(f"runs per change: {counts}")
    if drifts:
        print(summary(f"drift -> Synced ({args.drifts} userdel)", drifts))


def run(args: argparse.Namespace, dsn: str, env: dict[str, str], data: Path,
        started: float) -> None:
    store = RepoStore(Path(env["REPOS_DIR"]))
    while not (Path(env["REPOS_DIR"]) / f"{TENANT}.git").exists():
        time.sleep(0.5)
    time.sleep(1)
    head = store.head(TENANT)
    assert head is not None
    asyncio.run(wait_synced(dsn, head, limit=900))
    print(f"demo converged {time.monotonic() - started:.0f} s after start; "
          f"heartbeat interval {args.heartbeat_interval:.0f} s", flush=True)
    asyncio.run(bench(args, dsn, env, data))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=6)
    parser.add_argument("--drifts", type=int, default=3)
    parser.add_argument("--heartbeat-interval", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (chroot into appliance roots)", file=sys.stderr)
        return 2
    databases = Databases()
    dsn = databases.create()
    tmp = Path(tempfile.mkdtemp(prefix="hearth-bench-confirm-"))
    data = tmp / "data"
    data.mkdir()
    (data / "images").symlink_to(Path(os.environ.get("HEARTH_IMAGE_CACHE",
                                                     "/var/lib/hearth/images")))
    try:
        with private_redis() as redis_url:
            env = dict(os.environ, DATABASE_URL=dsn, REDIS_URL=redis_url,
                       HEARTH_DATA_DIR=str(data), REPOS_DIR=str(tmp / "repos"),
                       PYTHONPATH=str(ROOT))
            with open(tmp / "demo.log", "wb") as log:
                started = time.monotonic()
                demo = subprocess.Popen(
                    [sys.executable, "-m", "engine.cli", "demo", "--port", str(free_port()),
                     "--heartbeat-interval", str(args.heartbeat_interval)],
                    env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
                try:
                    run(args, dsn, env, data, started)
                finally:
                    demo.send_signal(signal.SIGINT)
                    try:
                        demo.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        demo.kill()
                        demo.wait()
    finally:
        remove_roots(data / "appliances" / TENANT)
        shutil.rmtree(tmp, ignore_errors=True)
        databases.drop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
