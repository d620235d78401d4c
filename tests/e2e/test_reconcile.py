"""Issue 5's acceptance, end to end, every part real.

The tests of this module share one installation (``fleet``) and run in
order: each starts from the converged state the previous one leaves.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time

import pytest
import redis

from tests.e2e.conftest import HEARTBEAT_INTERVAL, RESYNC_INTERVAL, Fleet

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ZOE = """    - name: zoe
      full_name: Zoe Park
      email: zoe.park@brightsmile.example
      uid: 3010
      groups: [reception]
      shell: /usr/sbin/nologin
"""
CONVERGE_TIMEOUT = 300


def _passwd(fleet: Fleet, name: str) -> str:
    return (fleet.roots[name] / "etc/passwd").read_text()


def _users_with(fleet: Fleet, extra: str) -> bytes:
    users = fleet.read("users.yaml")
    marker = "    - name: olduser\n"
    assert marker in users
    return users.replace(marker, extra + marker).encode()


def _runs_after(fleet: Fleet, run_id: int) -> list[dict]:
    return [r for r in fleet.runs() if r["id"] > run_id]


def _last_run_id(fleet: Fleet) -> int:
    runs = fleet.runs()
    return runs[-1]["id"] if runs else 0


def test_initial_convergence(fleet: Fleet) -> None:
    fleet.start_worker("w1")
    fleet.start_agents()
    took = fleet.wait_for(lambda: all(fleet.converged(n) for n in fleet.roots),
                          timeout=CONVERGE_TIMEOUT, what="both appliances to converge")
    print(f"\ninitial convergence of {len(fleet.roots)} fresh roots: {took:.1f} s")
    for name in fleet.roots:
        assert "skim:x:3001" in _passwd(fleet, name)
    check = subprocess.run(["chroot", str(fleet.roots["front-office"]), "testparm", "-s"],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0 and "[patients]" in check.stdout


def test_commit_adding_a_user_runs_only_the_affected_appliance(fleet: Fleet) -> None:
    before = _last_run_id(fleet)
    started = time.monotonic()
    new = fleet.commit({"users.yaml": _users_with(fleet, ZOE)}, "Add Zoe to reception")
    took = fleet.wait_for(lambda: fleet.converged("front-office", new) and fleet.converged(
        "lab", new), timeout=CONVERGE_TIMEOUT, what="Synced at the new revision")
    print(f"\ncommit-to-Synced (front-office, one user added): {took:.1f} s "
          f"(wall {time.monotonic() - started:.1f} s)")
    assert "zoe:x:3010" in _passwd(fleet, "front-office")
    assert "zoe:" not in _passwd(fleet, "lab")  # lab does not carry reception
    runs = _runs_after(fleet, before)
    assert runs, "no run after the commit"
    assert all(r["names"] == ["front-office"] for r in runs), runs
    assert all(r["revision"] == new and r["status"] == "succeeded" for r in runs), runs


NEW_HASH = ("$6$hearthe2e$hjZv7yWFbH68laQuWpBuzkGiu13lK8UBcuK635pYT992wHeHI1Tb0N4z3LGctU9Tzwk"
            "K/PhO7w4YlZw3XaY770")  # openssl passwd -6 -salt hearthe2e new-secret-42


def _shadow_hash(fleet: Fleet, root: str, user: str) -> str:
    for line in (fleet.roots[root] / "etc/shadow").read_text().splitlines():
        if line.startswith(user + ":"):
            return line.split(":")[1]
    raise AssertionError(f"{user} not in {root}'s /etc/shadow")


def test_a_password_changed_in_git_reaches_the_box(fleet: Fleet) -> None:
    """Heartbeats never carry passwords: the plan knows the new vault value is pending
    from the fingerprint of the one last applied."""
    import re

    from ansible.parsing.vault import VaultLib, VaultSecret

    from tests.e2e.conftest import VAULT_PASSWORD

    assert _shadow_hash(fleet, "front-office", "skim") != NEW_HASH
    vault = VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))])
    block = "".join(f"        {line}\n"
                    for line in vault.encrypt(NEW_HASH.encode()).decode().splitlines())
    users, count = re.subn(r"(    - name: skim\n(?:      (?!password:).*\n)*)      password: \|\n"
                           r"(?:        .*\n)+", lambda m: m.group(1) + "      password: |\n"
                           + block, fleet.read("users.yaml"))
    assert count == 1
    before = _last_run_id(fleet)
    new = fleet.commit({"users.yaml": users.encode()}, "Reset Sarah Kim's password")
    fleet.wait_for(lambda: all(fleet.converged(n, new) for n in fleet.roots),
                   timeout=CONVERGE_TIMEOUT, what="Synced after the password change")
    for name in fleet.roots:
        assert _shadow_hash(fleet, name, "skim") == NEW_HASH, name
    runs = _runs_after(fleet, before)
    assert runs and all(r["status"] == "succeeded" for r in runs), runs
    leaked = fleet.sql("""SELECT count(*) AS n FROM run_events e JOIN reconcile_runs r
                            ON r.id = e.run_id WHERE r.id > $1 AND (e.data::text LIKE $2
                            OR r.plan::text LIKE $2)""", before, "%hearthe2e%")
    assert leaked == [{"n": 0}]  # neither the hash nor its salt is in events or plans


def test_drift_is_healed_when_self_heal_is_on(fleet: Fleet) -> None:
    before = _last_run_id(fleet)
    subprocess.run(["chroot", str(fleet.roots["front-office"]), "userdel", "zoe"], check=True)
    fleet.wait_for(lambda: any(r["trigger"] == "SelfHeal" for r in _runs_after(fleet, before)),
                   timeout=60, what="a self-heal run")
    fleet.wait_for(lambda: fleet.converged("front-office") and "zoe:x:3010" in _passwd(
        fleet, "front-office"), timeout=CONVERGE_TIMEOUT, what="zoe restored and Synced")


def test_drift_is_reported_not_undone_when_self_heal_is_off(fleet: Fleet) -> None:
    tenant = fleet.read("tenant.yaml").replace("self_heal: true", "self_heal: false")
    new = fleet.commit({"tenant.yaml": tenant.encode()}, "Turn self-heal off")
    fleet.wait_for(lambda: all(fleet.converged(n, new) for n in fleet.roots),
                   timeout=CONVERGE_TIMEOUT, what="Synced with self_heal off")
    before = _last_run_id(fleet)
    subprocess.run(["chroot", str(fleet.roots["front-office"]), "userdel", "zoe"], check=True)
    fleet.wait_for(lambda: fleet.status("front-office")["sync"] == "OutOfSync",
                   timeout=60, what="OutOfSync after drift")
    time.sleep(HEARTBEAT_INTERVAL * 4)
    assert _runs_after(fleet, before) == []
    status = fleet.status("front-office")
    assert status["sync"] == "OutOfSync"
    assert "zoe:" not in _passwd(fleet, "front-office")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert "zoe" in ready["message"]

    tenant = fleet.read("tenant.yaml").replace("self_heal: false", "self_heal: true")
    fleet.commit({"tenant.yaml": tenant.encode()}, "Turn self-heal back on")
    fleet.wait_for(lambda: fleet.converged("front-office") and "zoe:x:3010" in _passwd(
        fleet, "front-office"), timeout=CONVERGE_TIMEOUT, what="converged after self-heal on")


def test_invalid_commit_is_not_applied_and_the_next_valid_one_is(fleet: Fleet) -> None:
    good = fleet.head()
    before = _last_run_id(fleet)
    broken = fleet.read("users.yaml").replace("- name: zoe", "- name: Zoe Park")
    bad = fleet.commit({"users.yaml": broken.encode()}, "Break users.yaml")

    def reported() -> bool:
        conditions = fleet.status("front-office")["conditions"] or []
        return any(c["type"] == "SourceValid" and c["status"] == "False" for c in conditions)

    fleet.wait_for(reported, timeout=60, what="the validation error in the status")
    status = fleet.status("front-office")
    source = next(c for c in status["conditions"] if c["type"] == "SourceValid")
    assert "users.yaml:" in source["message"] and "POSIX" in source["message"]
    assert status["desired_revision"] == good
    tenant = fleet.sql("SELECT validation_status, last_good_revision FROM tenants")[0]
    assert tenant == {"validation_status": "invalid", "last_good_revision": good}
    assert all(r["revision"] != bad for r in _runs_after(fleet, before))

    fixed = broken.replace("- name: Zoe Park", "- name: zoe").replace(
        "full_name: Zoe Park", "full_name: Zoe Park-Lee")
    new = fleet.commit({"users.yaml": fixed.encode()}, "Fix users.yaml, rename Zoe")
    fleet.wait_for(lambda: fleet.converged("front-office", new), timeout=CONVERGE_TIMEOUT,
                   what="the next valid commit to apply")
    assert "Zoe Park-Lee" in _passwd(fleet, "front-office")


def test_worker_killed_mid_run_is_interrupted_and_another_takes_over(fleet: Fleet) -> None:
    before = _last_run_id(fleet)
    users = fleet.read("users.yaml").replace("full_name: Zoe Park-Lee", "full_name: Zoe Lee")
    new = fleet.commit({"users.yaml": users.encode()}, "Rename Zoe again")
    fleet.wait_for(lambda: any(r["status"] == "running" for r in _runs_after(fleet, before)),
                   timeout=60, what="a run to start")
    victim = next(r for r in _runs_after(fleet, before) if r["status"] == "running")
    for worker in fleet.workers:
        if worker.poll() is None:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
    fleet.start_worker("w2")
    fleet.wait_for(lambda: fleet.converged("front-office", new), timeout=CONVERGE_TIMEOUT,
                   what="convergence after the takeover")
    runs = {r["id"]: r for r in fleet.runs()}
    assert runs[victim["id"]]["status"] == "interrupted"
    assert "Zoe Lee" in _passwd(fleet, "front-office")
    # Run records never overlap for one appliance.
    mine = sorted((r for r in runs.values() if "front-office" in r["names"]
                   and r["started_at"] is not None and not r["check_mode"]),
                  key=lambda r: r["started_at"])
    for earlier, later in itertools.pairwise(mine):
        assert earlier["finished_at"] is not None
        assert later["started_at"] >= earlier["finished_at"], (earlier, later)


def test_redis_flushall_loses_nothing_the_resync_does_not_rederive(fleet: Fleet) -> None:
    users = fleet.read("users.yaml").replace("full_name: Zoe Lee", "full_name: Zoe Lee-Park")
    new = fleet.commit({"users.yaml": users.encode()}, "Rename Zoe once more")
    time.sleep(0.2)
    redis.Redis.from_url(fleet.redis_url).flushall()  # the fleet's own server
    took = fleet.wait_for(lambda: fleet.converged("front-office", new),
                          timeout=RESYNC_INTERVAL * 1.1 + 120, what="convergence after FLUSHALL")
    print(f"\nconverged {took:.1f} s after FLUSHALL (resync interval {RESYNC_INTERVAL:.0f} s)")
    assert "Zoe Lee-Park" in _passwd(fleet, "front-office")


def _hearth(fleet: Fleet, *args: str, stdin: str | None = None,
            home: str | None = None) -> subprocess.CompletedProcess[str]:
    import sys

    env = {**fleet.env, "HOME": home or str(fleet.logs.parent / "home")}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=300, check=False)


def test_cli_lists_diffs_and_syncs_over_the_api(fleet: Fleet) -> None:
    password = "an-operator-password-42"
    created = _hearth(fleet, "user", "create", "ops", "--admin", "--password-stdin",
                      stdin=password + "\n")
    assert created.returncode == 0, created.stderr
    login = _hearth(fleet, "login", "ops", "--password-stdin", "--api", fleet.api_url,
                    stdin=password + "\n")
    assert login.returncode == 0, login.stderr
    token_file = fleet.logs.parent / "home/.config/hearth/token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert password not in token_file.read_text()

    listing = _hearth(fleet, "app", "list", "brightsmile", "--api", fleet.api_url)
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[0]: line.split() for line in listing.stdout.splitlines()[1:]}
    assert lines["front-office"][1:3] == ["Synced", "Healthy"]
    assert lines["front-office"][4] == fleet.head()[:12]

    diff = _hearth(fleet, "app", "diff", "brightsmile", "front-office", "--api", fleet.api_url)
    assert diff.returncode == 0 and "is in sync" in diff.stdout, diff.stdout + diff.stderr

    # Self-heal off, so the drift below waits for the operator (a manual sync overrides it).
    tenant = fleet.read("tenant.yaml").replace("self_heal: true", "self_heal: false")
    head = fleet.commit({"tenant.yaml": tenant.encode()}, "Self-heal off for the CLI test")
    fleet.wait_for(lambda: fleet.converged("front-office", head), timeout=CONVERGE_TIMEOUT,
                   what="Synced with self_heal off")
    subprocess.run(["chroot", str(fleet.roots["front-office"]), "userdel", "skim"], check=True)
    fleet.run_agent("front-office")
    diff = _hearth(fleet, "app", "diff", "brightsmile", "front-office", "--api", fleet.api_url)
    assert diff.returncode == 1 and "+ users: users/skim" in diff.stdout, diff.stdout

    passwd_before = _passwd(fleet, "front-office")
    before = _last_run_id(fleet)
    dry = _hearth(fleet, "app", "sync", "brightsmile", "front-office", "--dry-run", "--wait",
                  "--api", fleet.api_url)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    dry_runs = [r for r in _runs_after(fleet, before) if r["check_mode"]]
    assert dry_runs and all(r["status"] == "succeeded" for r in dry_runs)
    assert "succeeded" in dry.stdout
    assert _passwd(fleet, "front-office") == passwd_before  # check mode changed nothing
    assert [r for r in _runs_after(fleet, before) if not r["check_mode"]] == []

    sync = _hearth(fleet, "app", "sync", "brightsmile", "front-office", "--wait",
                   "--api", fleet.api_url)
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert "skim:x:3001" in _passwd(fleet, "front-office")
    fleet.wait_for(lambda: fleet.converged("front-office"), timeout=CONVERGE_TIMEOUT,
                   what="converged after a manual sync")
    tenant = fleet.read("tenant.yaml").replace("self_heal: false", "self_heal: true")
    fleet.commit({"tenant.yaml": tenant.encode()}, "Self-heal back on")
