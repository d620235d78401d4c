"""Samba passwords from vault values reach passdb in a real appliance root.

One module-scoped root, runs in order: users first (users.yml), then the samba
playbook adds alice's account with her password and bob's with a random one;
a second run changes nothing; a dry run with a new password changes nothing; a
real run sets the new password and gives bob his. Each step is checked in the
root with ``pdbedit -L -w`` (the NT hash Samba stores), and no run's events or
files hold a password or an NT hash.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from engine.execution.ansible import AnsibleExecutor, RunResult
from engine.execution.extravars import (
    Secrets,
    appliance_vars,
    build_extravars,
    decrypt_vault_value,
    nt_hash,
    samba_passwords,
)
from engine.execution.workspace import Target
from schemas.config import DesiredAppliance

from .desired import appliance_data
from .helpers import VAULT_PASSWORD, in_root, vault

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAME = "smbpw-1"
TASK = "Samba accounts of share users"
FIRST = "Alice's 1st: pässwörd $(id) {{ 7*7 }}"
SECOND = "alice-second-passw0rd-\U0001f600"
BOB = "bob-share-password-42"
_run_ids = itertools.count(1)



def _desired(**passwords: str) -> DesiredAppliance:
    """Users and Samba only: alice (group finance, share finance), bob (share scratch)."""
    data = appliance_data(NAME)
    data.update(dns=None, mail=None, pki=None)
    for user in data["users"]["users"]:
        if user["name"] in passwords:
            user["samba_password"] = vault(passwords[user["name"]])
    return DesiredAppliance.model_validate(data)


@pytest.fixture(scope="module")
def state(clone, executor: AnsibleExecutor) -> dict[str, Any]:
    (root,) = clone([NAME], hostnames={NAME: f"{NAME}.example.test"})
    return {"root": root, "executor": executor, "results": []}


def _run(state: dict[str, Any], desired: DesiredAppliance, *, playbook: str = "samba",
         check: bool = False, domains: list[str] | None = None) -> RunResult:
    secrets = Secrets(samba_passwords=samba_passwords(
        desired, lambda v: decrypt_vault_value(v, VAULT_PASSWORD)))
    extravars = build_extravars([appliance_vars(desired, secrets=secrets)])
    result = state["executor"].run(run_id=f"smbpw-{next(_run_ids)}", extravars=extravars,
                                   targets=[Target(name=NAME, root=state["root"])],
                                   playbook=playbook, check=check, domains=domains)
    assert result.succeeded, result.events
    state["results"].append(result)
    return result


def _nt_hashes(root: Path) -> dict[str, str]:
    """Account -> NT hash as Samba stores it (``pdbedit -L -w``, smbpasswd format)."""
    out = {}
    for line in in_root(root, "pdbedit", "-L", "-w").stdout.splitlines():
        fields = line.split(":")
        out[fields[0]] = fields[3]
    return out


def _task(result: RunResult) -> dict[str, Any]:
    # site.yml names the samba role's task (skipped there: its last play does the work)
    # and the last play's task alike
    (event,) = [e for e in result.events
                if e["task"] == TASK and e["event"] != "runner_on_skipped"]
    return event


def test_new_account_gets_its_vault_password(state: dict[str, Any]) -> None:
    desired = _desired(alice=FIRST)
    _run(state, desired, playbook="users")
    assert _nt_hashes(state["root"]) == {}
    result = _run(state, desired)
    hashes = _nt_hashes(state["root"])
    assert hashes["alice"] == nt_hash(FIRST).upper()
    assert "bob" in hashes  # no samba_password: an account with a random password
    assert hashes["bob"] != nt_hash(BOB).upper()
    assert _task(result)["changes"] == [
        "samba account alice added",
        "samba account bob added (no password given: a random one)",
    ]


def test_second_run_changes_nothing(state: dict[str, Any]) -> None:
    before = _nt_hashes(state["root"])
    result = _run(state, _desired(alice=FIRST))
    assert _task(result)["event"] == "runner_on_ok"
    assert not _task(result)["changed"]
    assert result.hosts[NAME].changed == 0
    assert _nt_hashes(state["root"]) == before


def test_dry_run_reports_a_new_password_and_sets_nothing(state: dict[str, Any]) -> None:
    before = _nt_hashes(state["root"])
    result = _run(state, _desired(alice=SECOND, bob=BOB), check=True)
    assert _task(result)["changes"] == ["samba password of alice set",
                                        "samba password of bob set"]
    assert _nt_hashes(state["root"]) == before


def test_changed_password_is_set(state: dict[str, Any]) -> None:
    result = _run(state, _desired(alice=SECOND, bob=BOB))
    hashes = _nt_hashes(state["root"])
    assert hashes["alice"] == nt_hash(SECOND).upper()
    assert hashes["bob"] == nt_hash(BOB).upper()
    assert _task(result)["changes"] == ["samba password of alice set",
                                        "samba password of bob set"]
    assert result.hosts[NAME].changed == 1
    again = _run(state, _desired(alice=SECOND, bob=BOB))
    assert again.hosts[NAME].changed == 0


THIRD = "alice-third-via-site-yml"


def test_the_engines_path_site_yml_sets_a_changed_password(state: dict[str, Any]) -> None:
    """The reconciler runs site.yml with the changed domains as tags, not samba.yml."""
    result = _run(state, _desired(alice=THIRD, bob=BOB), playbook="site", domains=["samba"])
    assert _nt_hashes(state["root"])["alice"] == nt_hash(THIRD).upper()
    assert _task(result)["changes"] == ["samba password of alice set"]
    again = _run(state, _desired(alice=THIRD, bob=BOB), playbook="site", domains=["samba"])
    assert not _task(again)["changed"]


def test_no_password_or_hash_in_events_or_run_files(state: dict[str, Any]) -> None:
    results: list[RunResult] = state["results"]
    assert len(results) == 8, "runs the tests above made"
    # Each password as it is and JSON-escaped (how a leak into an event file would read).
    secrets = [s for password in (FIRST, SECOND, THIRD, BOB)
               for s in (password, json.dumps(password)[1:-1], nt_hash(password),
                         nt_hash(password).upper())]
    events = json.dumps([r.events for r in results], ensure_ascii=False)
    runs_dir: Path = state["executor"].runs_dir
    files = [path for r in results for path in (runs_dir / r.run_id).rglob("*")
             if path.is_file()]
    assert any(path.name == "stdout" for path in files)  # the run record is there
    assert any(path.parent.name == "job_events" for path in files)
    for secret in secrets:
        assert secret not in events
        for path in files:
            assert secret not in path.read_text(errors="replace"), f"secret in {path}"
