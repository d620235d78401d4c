"""Extravars are data: ansible_* keys refused, every string written unsafe, types kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.errors import InvalidInputError
from engine.execution.extravars import (
    ManagedInventory,
    appliance_vars,
    build_extravars,
    managed_inventory,
    reject_ansible_keys,
)
from engine.execution.workspace import Target, prepare_workspace, to_flow_yaml

from .desired import INJECTED_COMMENT, INJECTED_FULL_NAME, INJECTED_TXT, literal_appliance


@pytest.mark.parametrize(
    "extravars",
    [
        pytest.param({"hearth": {"ansible_connection": "local"}}, id="top"),
        pytest.param({"hearth": {"appliances": {"a": {"x": [{"ANSIBLE_become": True}]}}}},
                     id="nested-in-list-any-case"),
        pytest.param({"hearth": {}, "ansible_python_interpreter": "/bin/sh"}, id="beside"),
        pytest.param({"other": {}}, id="other-namespace"),
    ],
)
def test_ansible_keys_are_rejected(extravars: dict) -> None:
    with pytest.raises(InvalidInputError):
        reject_ansible_keys(extravars)


def test_extravars_of_literal_appliance_pass() -> None:
    extravars = build_extravars([appliance_vars(literal_appliance())])
    assert list(extravars) == ["hearth"]
    data = extravars["hearth"]["appliances"]["office-1"]
    assert data["users"]["users"][0]["full_name"] == INJECTED_FULL_NAME
    assert data["dns"]["zones"][0]["records"][5]["data"] == f'"{INJECTED_TXT}"'
    json.dumps(extravars)  # plain data only


def test_duplicate_appliance_is_rejected() -> None:
    item = appliance_vars(literal_appliance())
    with pytest.raises(InvalidInputError):
        build_extravars([item, item])


def test_one_run_holds_one_tenant() -> None:
    ours = appliance_vars(literal_appliance("a"))
    theirs = dict(appliance_vars(literal_appliance("b")), tenant="other")
    with pytest.raises(InvalidInputError, match="one tenant"):
        build_extravars([ours, theirs])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("plain", '"plain"', id="plain"),
        pytest.param('a"b\\c', '"a\\"b\\\\c"', id="quote-backslash"),
        pytest.param("caf\u00e9", '"caf\\u00e9"', id="latin"),
        pytest.param("\U0001f600", '"\\U0001f600"', id="astral"),
        pytest.param("0755", '"0755"', id="octal-looking"),
    ],
)
def test_flow_yaml_strings(text: str, expected: str) -> None:
    assert to_flow_yaml(text) == expected
    assert yaml.safe_load(to_flow_yaml(text)) == text


def test_prune_off_keeps_orphans_and_lists_them() -> None:
    desired = literal_appliance()
    previous = managed_inventory(desired)
    data = desired.model_dump(mode="json")
    data["samba"]["shares"] = data["samba"]["shares"][:1]
    smaller = type(desired).model_validate(data)
    kept = appliance_vars(smaller, previous=previous, prune=False)
    assert kept["orphans"]["shares"] == ["public", "scratch"]
    assert [s["name"] for s in kept["samba"]["shares"]] == ["finance", "public", "scratch"]
    pruned = appliance_vars(smaller, previous=previous, prune=True)
    assert [s["name"] for s in pruned["samba"]["shares"]] == ["finance"]
    assert pruned["orphans"] == {}
    assert managed_inventory(smaller, previous, prune=True).shares == [
        previous.shares[0]]


def test_only_managed_names_are_removed() -> None:
    desired = literal_appliance()
    previous = ManagedInventory(users=["alice", "bob", "carol"])
    data = appliance_vars(desired, previous=previous, prune=True)
    assert data["users"]["remove_users"] == ["carol"]  # never a user Hearth did not make
    assert appliance_vars(desired, previous=previous, prune=False)["users"]["remove_users"] == []


def test_unsafe_values_stay_literal_in_a_real_run(tmp_path: Path) -> None:
    """Through the real workspace file and ansible-playbook: nothing is templated."""
    extravars = build_extravars([appliance_vars(literal_appliance("local"))])
    workspace = prepare_workspace(runs_dir=tmp_path / "runs", run_id="unit",
                                  extravars=extravars, targets=[Target(name="local",
                                                                       root=Path("/"))],
                                  pki_dir=tmp_path / "pki")
    out = tmp_path / "out.json"
    playbook = tmp_path / "pb.yml"
    playbook.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.copy:\n"
        "        dest: " + str(out) + "\n"
        "        content: \"{{ {'name': a.users.users[0].full_name,"
        " 'comment': a.samba.shares[0].comment, 'txt': a.dns.zones[0].records[5].data,"
        " 'mode': a.samba.directories[1].mode, 'uid': a.users.users[0].uid} | to_json }}\"\n"
        "      vars:\n        a: \"{{ hearth.appliances['local'] }}\"\n"
    )
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", "ansible_python_interpreter=" + sys.executable,
         "-e", f"@{workspace.extravars}", str(playbook)],
        capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "ANSIBLE_HOME": str(tmp_path / "home"),
             "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(out.read_text()) == {
        "name": INJECTED_FULL_NAME, "comment": INJECTED_COMMENT, "txt": f'"{INJECTED_TXT}"',
        "mode": "0755", "uid": 2100,
    }
    assert (workspace.extravars.stat().st_mode & 0o777) == 0o600
