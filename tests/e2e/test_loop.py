"""Issue 10, items 1, 4 and 7, end to end: one run per change, confirmation in seconds,
workers seen and runs of dead workers found quickly.

One installation (``fleet``) for the module; the tests run in order, each from
the converged state the previous one leaves. The agents' timer (``start_agents``)
runs only where a test says so: without it, the only heartbeats are the ones a
test sends and the one each run sends as its last step.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

import pytest

from tests.e2e.conftest import HEARTBEAT_INTERVAL, Fleet

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONVERGE_TIMEOUT = 300
LIVENESS_INTERVAL = 1.0


def _user(name: str, uid: int, full_name: str) -> str:
    return (f"    - name: {name}\n      full_name: {full_name}\n"
            f"      email: {name}@brightsmile.example\n      uid: {uid}\n"
            "      groups: [reception]\n      shell: /usr/sbin/nologin\n")


def _add_user(fleet: Fleet, name: str, uid: int) -> str:
    users = fleet.read("users.yaml")
    marker = "    - name: olduser\n"
    assert marker in users
    return fleet.commit({"users.yaml": users.replace(
        marker, _user(name, uid, name.title()) + marker).encode()}, f"Add {name}")


def _runs_after(fleet: Fleet, run_id: int) -> list[dict[str, Any]]:
    return [r for r in fleet.runs() if r["id"] > run_id and not r["check_mode"]]


def _last_run_id(fleet: Fleet) -> int:
    runs = fleet.runs()
    return runs[-1]["id"] if runs else 0


def _ready(fleet: Fleet) -> dict[str, Any]:
    with urllib.request.urlopen(fleet.api_url + "/ready", timeout=5) as response:
        return json.loads(response.read())


def _post_heartbeat(fleet: Fleet, name: str, body: dict[str, Any]) -> int:
    token = (fleet.roots[name] / "etc/hearth/agent.token").read_text().strip()
    request = urllib.request.Request(
        fleet.api_url + "/api/v1/heartbeat", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def _printed_heartbeat(fleet: Fleet, name: str) -> dict[str, Any]:
    """What the agent of ``name`` would send now (``--print`` posts nothing)."""
    proc = subprocess.run(["chroot", str(fleet.roots[name]), "python3",
                           "/usr/local/bin/hearth-agent", "--print"],
                          capture_output=True, text=True, timeout=60, check=True)
    return json.loads(proc.stdout)


def _worker_of(fleet: Fleet, worker_id: str) -> subprocess.Popen[bytes]:
    pid = int(worker_id.rsplit("-", 1)[1])
    return next(w for w in fleet.workers if w.pid == pid)


def test_initial_convergence(fleet: Fleet) -> None:
    fleet.start_worker("w1", "--liveness-interval", str(LIVENESS_INTERVAL))
    fleet.start_agents()
    fleet.wait_for(lambda: all(fleet.converged(n) for n in fleet.roots),
                   timeout=CONVERGE_TIMEOUT, what="both appliances to converge")
    fleet.stop_agents()


def test_a_run_is_confirmed_by_its_own_report_without_the_timer(fleet: Fleet) -> None:
    """Item 7: no agent timer runs; the run's last step reports, so the change is
    confirmed (Synced at the new revision) seconds after it was applied."""
    before = _last_run_id(fleet)
    new = _add_user(fleet, "yara", 3020)
    took = fleet.wait_for(lambda: fleet.converged("front-office", new), timeout=60,
                          what="Synced at the new revision with no agent timer")
    print(f"\ncommit -> Synced with no agent timer: {took:.1f} s")
    runs = _runs_after(fleet, before)
    assert [(r["names"], r["status"], r["revision"]) for r in runs] == [
        (["front-office"], "succeeded", new)]
    assert took < 30


def test_a_report_collected_before_the_run_ended_is_not_drift(fleet: Fleet) -> None:
    """Item 1, the rule itself: a heartbeat collected before the run (it names the run
    before) but received after the run ended starts no self-heal run; the appliance waits
    for a report that names the run."""
    stale = _printed_heartbeat(fleet, "front-office")  # before the change, like a timer tick
    before = _last_run_id(fleet)
    new = _add_user(fleet, "xena", 3021)
    fleet.wait_for(lambda: any(r["status"] == "succeeded" for r in _runs_after(fleet, before)),
                   timeout=60, what="the run of the change")
    # Its own report may be stored already; this one arrives after it (as a timer's report
    # whose post was slower would, or one sent while the run's own report failed).
    last = fleet.sql("SELECT max(sequence) AS s FROM observed_latest")[0]["s"]
    stale["sequence"] = last + 1
    assert _post_heartbeat(fleet, "front-office", stale) == 200
    time.sleep(HEARTBEAT_INTERVAL * 3)
    runs = _runs_after(fleet, before)
    assert [(r["status"], r["trigger"]) for r in runs] == [("succeeded", "NewRevision")]
    status = fleet.status("front-office")
    assert (status["sync"], status["health"]) == ("OutOfSync", "Progressing")
    assert "xena" not in "".join(c["message"] for c in status["conditions"]
                                 if c["reason"] in ("StillDiffers", "DriftDetected"))
    fleet.run_agent("front-office")  # the next timer report names the run
    fleet.wait_for(lambda: fleet.converged("front-office", new), timeout=60,
                   what="Synced after a report naming the run")
    assert len(_runs_after(fleet, before)) == 1


def test_one_run_per_change_with_the_agents_on_their_timer(fleet: Fleet) -> None:
    """Item 1 as an operator sees it: agents report every HEARTBEAT_INTERVAL; each change
    is pushed just before a report is due; each gets exactly one run."""
    fleet.start_agents()
    try:
        took, counts = [], []
        for i in range(3):
            time.sleep(HEARTBEAT_INTERVAL * 0.8)  # the next tick is close
            before = _last_run_id(fleet)
            started = time.monotonic()
            new = _add_user(fleet, f"walt{i}", 3030 + i)
            fleet.wait_for(lambda new=new: fleet.converged("front-office", new),
                           timeout=CONVERGE_TIMEOUT, what=f"change {i} Synced")
            took.append(time.monotonic() - started)
            time.sleep(HEARTBEAT_INTERVAL * 2)  # a second run would start in here
            counts.append(len(_runs_after(fleet, before)))
        print(f"\ncommit -> Synced with agents on a {HEARTBEAT_INTERVAL:.0f} s timer: "
              f"{', '.join(f'{t:.1f}' for t in took)} s (p50 {statistics.median(took):.1f} s); "
              f"runs per change {counts}")
        assert counts == [1, 1, 1]
    finally:
        fleet.stop_agents()


def test_a_worker_killed_mid_run_is_found_and_its_appliance_replanned(fleet: Fleet) -> None:
    """Item 4: kill -9 of the worker running a run, another worker alive: the run is
    interrupted and the appliance re-planned within seconds (not when the queue lease
    runs out), then converged; run records never overlap."""
    fleet.start_worker("w2", "--liveness-interval", str(LIVENESS_INTERVAL))
    fleet.wait_for(lambda: _ready(fleet)["workers"]["alive"] == 2, timeout=60,
                   what="the second worker to beat")
    fleet.start_agents()
    try:
        before = _last_run_id(fleet)
        new = _add_user(fleet, "vera", 3040)
        fleet.wait_for(lambda: any(r["status"] == "running" for r in _runs_after(fleet, before)),
                       timeout=60, what="a run to start")
        victim = next(r for r in _runs_after(fleet, before) if r["status"] == "running")
        worker = _worker_of(fleet, victim["worker_id"])
        killed = time.monotonic()
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        interrupted = fleet.wait_for(
            lambda: fleet.sql("SELECT status FROM reconcile_runs WHERE id = $1",
                              victim["id"])[0]["status"] == "interrupted",
            timeout=60, what="the run marked interrupted")

        def replanned() -> bool:
            """A pass took the appliance again: it started a run, or wrote its status
            (a pass that starts no run writes status at once, one that runs, after)."""
            rows = fleet.sql(
                """SELECT s.updated_at > r.finished_at OR EXISTS (
                              SELECT 1 FROM reconcile_runs n WHERE n.id > r.id
                                 AND n.appliances && r.appliances AND n.started_at IS NOT NULL)
                          AS after
                     FROM appliance_status s JOIN appliances a ON a.id = s.appliance_id,
                          reconcile_runs r
                    WHERE a.name = 'front-office' AND r.id = $1""", victim["id"])
            return bool(rows and rows[0]["after"])

        fleet.wait_for(replanned, timeout=60, what="the appliance re-planned")
        replanned_after = time.monotonic() - killed
        print(f"\nkill -9 mid-run: interrupted after {interrupted:.1f} s, re-planned after "
              f"{replanned_after:.1f} s")
        assert interrupted <= 10 and replanned_after <= 10
        fleet.wait_for(lambda: fleet.converged("front-office", new), timeout=CONVERGE_TIMEOUT,
                       what="converged after the takeover")
    finally:
        fleet.stop_agents()
    runs = [r for r in fleet.runs() if "front-office" in r["names"] and r["started_at"]
            and not r["check_mode"]]
    for earlier, later in itertools.pairwise(sorted(runs, key=lambda r: r["started_at"])):
        assert earlier["finished_at"] is not None
        assert later["started_at"] >= earlier["finished_at"], (earlier, later)
    # What reached the box is on record against the revision: the heartbeat that first
    # reported it, and the run it names.
    confirmed = fleet.sql(
        """SELECT applied_run FROM observed_history h JOIN appliances a ON a.id = h.appliance_id
            WHERE a.name = 'front-office' AND h.applied_revision = $1
            ORDER BY h.sequence LIMIT 1""", new)
    assert confirmed and confirmed[0]["applied_run"] is not None
    assert confirmed[0]["applied_run"] > before


def test_a_stopped_worker_is_reported_by_ready_and_app_list(fleet: Fleet) -> None:
    """Item 4: SIGSTOP of the only worker; /ready says no worker is alive within three of
    its beat intervals, and `hearth app list` marks the statuses stale."""
    alive = [w for w in fleet.workers if w.poll() is None]
    assert len(alive) == 1
    worker = alive[0]
    fleet.wait_for(lambda: _ready(fleet)["workers"]["alive"] == 1, timeout=10,
                   what="/ready to count the worker")
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        stopped = time.monotonic()
        fleet.wait_for(lambda: _ready(fleet)["workers"]["stale"], timeout=10,
                       what="/ready to report no live worker")
        took = time.monotonic() - stopped
        print(f"\nSIGSTOP of the only worker: /ready reported it after {took:.1f} s "
              f"(beat interval {LIVENESS_INTERVAL:.0f} s)")
        assert took <= 3 * LIVENESS_INTERVAL
        ready = _ready(fleet)
        assert ready["status"] == "degraded" and ready["workers"]["alive"] == 0
        assert ready["workers"]["message"].startswith("no worker alive for ")
        listing = _hearth_app_list(fleet)
        assert listing.stdout.startswith("STALE: no worker alive for "), listing.stdout
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    fleet.wait_for(lambda: _ready(fleet)["workers"]["alive"] == 1, timeout=10,
                   what="/ready to count the worker again")
    listing = _hearth_app_list(fleet)
    assert "STALE" not in listing.stdout
    assert listing.stdout.startswith("NAME")


def _hearth_app_list(fleet: Fleet) -> subprocess.CompletedProcess[str]:
    home = fleet.logs.parent / "home"
    env = {**fleet.env, "HOME": str(home)}
    if not (home / ".config/hearth/token").exists():
        password = "an-operator-password-42"
        subprocess.run([sys.executable, "-m", "engine.cli", "user", "create", "ops", "--admin",
                        "--password-stdin"], env=env, input=password + "\n", text=True,
                       capture_output=True, check=True)
        subprocess.run([sys.executable, "-m", "engine.cli", "login", "ops", "--password-stdin",
                        "--api", fleet.api_url], env=env, input=password + "\n", text=True,
                       capture_output=True, check=True)
    listing = subprocess.run([sys.executable, "-m", "engine.cli", "app", "list", "brightsmile",
                              "--api", fleet.api_url], env=env, capture_output=True, text=True,
                             timeout=60, check=False)
    assert listing.returncode == 0, listing.stderr
    return listing
