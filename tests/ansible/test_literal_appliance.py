"""Injection, passwords, removal, prune and dry runs on one root, from literal desired state.

The runs build on each other (converge, then drop a user and a share with prune
off, then turn prune on), so they share one module-scoped root and run in order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.execution.extravars import (
    ManagedInventory,
    Secrets,
    decrypt_vault_value,
    managed_inventory,
    password_hashes,
)
from schemas.config import DesiredAppliance
from schemas.heartbeat import Heartbeat

from .desired import (
    INJECTED_COMMENT,
    INJECTED_FULL_NAME,
    INJECTED_TXT,
    appliance_data,
)
from .helpers import VAULT_PASSWORD, agent_report, in_root, mismatches, vault

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PASSWORD_HASH = ("$6$hearthtestsalt$jYWBH4WBPIn/kywDpq0Z2r798naufE5X58azUvILBlYjKdaWDaWVpa0q0"
                 "3x2MJ.NQA5fx1fvAuoWPmlQveE6J/")
NAME = "literal-1"
REVISION = "0123456789abcdef0123456789abcdef01234567"
AGENT_TOKEN = "hearth-appliance-token-do-not-log-0123456789"



def _desired(*, prune: bool = False, drop_bob: bool = False,
             drop_scratch: bool = False) -> DesiredAppliance:
    data = appliance_data(NAME, prune=prune)
    data["users"]["users"][0]["password"] = vault(PASSWORD_HASH)
    if drop_bob:
        data["users"]["users"][1]["state"] = "absent"
        data["samba"]["shares"] = [s for s in data["samba"]["shares"] if s["name"] != "scratch"]
        data["mail"]["mailboxes"] = [m for m in data["mail"]["mailboxes"] if m["user"] != "bob"]
        data["mail"]["aliases"][0]["destinations"] = ["alice@example.test"]
    elif drop_scratch:
        data["samba"]["shares"] = [s for s in data["samba"]["shares"] if s["name"] != "scratch"]
    return DesiredAppliance.model_validate(data)


@pytest.fixture(scope="module")
def state(clone) -> dict[str, Any]:
    (root,) = clone([NAME], hostnames={NAME: f"{NAME}.example.test"})
    return {"root": root, "inventory": ManagedInventory()}


def _converge(converge, state: dict[str, Any], desired: DesiredAppliance, **kwargs: Any):
    secrets = Secrets(password_hashes=password_hashes(
        desired, lambda v: decrypt_vault_value(v, VAULT_PASSWORD)), agent_token=AGENT_TOKEN)
    result = converge({state["root"]: desired},
                      **{NAME: {"previous": state["inventory"], "secrets": secrets,
                                "revision": REVISION, **kwargs}})
    assert result.succeeded, result.events
    state["inventory"] = managed_inventory(desired, state["inventory"])
    state["last"] = result
    return result


def test_converge_and_injection_arrives_literally(converge, state: dict[str, Any]) -> None:
    desired = _desired()
    _converge(converge, state, desired)
    root: Path = state["root"]
    passwd = (root / "etc/passwd").read_text()
    assert f"alice:x:2100:2100:{INJECTED_FULL_NAME}:/home/alice:/bin/bash" in passwd
    zone = (root / "etc/bind/hearth/db.example.test").read_text()
    assert f'@ IN TXT "{INJECTED_TXT}"' in zone
    smb = in_root(root, "testparm", "-s").stdout
    assert f"comment = {INJECTED_COMMENT}" in smb
    report = agent_report(root)
    assert mismatches(desired, report["observed"]) == []
    shares = {s["name"]: s for s in report["observed"]["samba"]["shares"]}
    assert shares["finance"]["comment"] == INJECTED_COMMENT
    assert report["applied_revision"] == REVISION


def test_password_hash_from_vault_is_set(state: dict[str, Any]) -> None:
    shadow = (state["root"] / "etc/shadow").read_text().splitlines()
    entry = next(line for line in shadow if line.startswith("alice:"))
    assert entry.split(":")[1] == PASSWORD_HASH
    bob = next(line for line in shadow if line.startswith("bob:"))
    assert bob.split(":")[1].startswith("!")  # no password given: locked
    # the hash is masked in the result, the user's name is not
    (users,) = [e for e in state["last"].events if e["task"] == "Users and groups"
                and e["event"] != "runner_on_skipped"]
    assert "user alice password set" in users["changes"], users["changes"]


def test_secrets_reach_the_box_but_not_the_run_record(state: dict[str, Any]) -> None:
    root: Path = state["root"]
    token = root / "etc/hearth/agent.token"
    assert token.read_text() == AGENT_TOKEN + "\n"
    assert token.stat().st_mode & 0o777 == 0o600
    key = (root / "etc/hearth/tls/services.key").read_text()
    assert "PRIVATE KEY" in key
    run_dir = state["last"].artifacts_dir.parent.parent
    assert not (run_dir / "env/extravars").exists()
    for path in run_dir.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            for secret in (AGENT_TOKEN, PASSWORD_HASH, key.strip().splitlines()[1]):
                assert secret not in text, f"secret in {path}"


def test_dry_run_reports_changes_and_changes_nothing(converge, state: dict[str, Any]) -> None:
    desired = _desired(drop_scratch=True, prune=True)
    before = (state["root"] / "etc/samba/smb.conf").read_text()
    result = converge({state["root"]: desired}, check=True, domains=["samba"],
                      **{NAME: {"previous": state["inventory"]}})
    assert result.succeeded
    # smb.conf loses [scratch]; bob, who only needed scratch, would lose his Samba account.
    assert result.hosts[NAME].changed == 2
    assert (state["root"] / "etc/samba/smb.conf").read_text() == before
    assert "bob:" in in_root(state["root"], "pdbedit", "-L").stdout


def test_absent_user_is_removed_and_dropped_share_kept_without_prune(
        converge, state: dict[str, Any]) -> None:
    desired = _desired(drop_bob=True)
    result = _converge(converge, state, desired, prune=False)
    root: Path = state["root"]
    assert in_root(root, "getent", "passwd", "bob", check=False).returncode == 2
    assert "bob" not in in_root(root, "pdbedit", "-L").stdout
    # The share left the YAML, prune is off: still configured, and reported.
    assert "[scratch]" in in_root(root, "testparm", "-s").stdout
    report = agent_report(root)
    assert "scratch" in {s["name"] for s in report["observed"]["samba"]["shares"]}
    assert "scratch" in [s["name"] for s in state["inventory"].shares]
    assert result.hosts[NAME].changed > 0


def test_dropped_share_is_removed_with_prune(converge, state: dict[str, Any]) -> None:
    desired = _desired(drop_bob=True, prune=True)
    _converge(converge, state, desired, prune=True)
    root: Path = state["root"]
    assert "[scratch]" not in in_root(root, "testparm", "-s").stdout
    assert (root / "srv/scratch").is_dir()  # data is never deleted
    report = agent_report(root)
    Heartbeat.model_validate(report)
    assert mismatches(desired, report["observed"]) == []
    assert [s["name"] for s in state["inventory"].shares] == ["finance", "public"]


def test_one_domain_run_touches_only_that_domain(converge, state: dict[str, Any]) -> None:
    desired = _desired(drop_bob=True, prune=True)
    result = converge({state["root"]: desired}, domains=["users"],
                      **{NAME: {"previous": state["inventory"]}})
    assert result.succeeded
    tasks = {e["task"] for e in result.events if e["event"] == "runner_on_ok"}
    assert tasks == {"Users and groups"}
    assert result.hosts[NAME].changed == 0
