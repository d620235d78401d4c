"""hearth_samba_accounts on a real appliance root, called directly with literal arguments.

One module-scoped root with the Unix users alice, bob and carol (no Samba
accounts yet); each test runs ansible-playbook over the chroot connection with
one task of the module and reads the JSON result. Checked: typed sub-options,
one failing account not stopping the others, dry runs with a diff of names
only, and an NT hash that never appears on a command line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from engine.execution.workspace import ANSIBLE_DIR

from .helpers import in_root

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAME = "smbmod-1"
ALICE_HASH = "8846f7eaee8fb117ad06bdd830b7586c"  # NT hash of "password"
ALICE_NEW = "0f085abdc849bc79b06ebeb983a52f59"  # NT hash of "Grüße aus Köln 😀"
CAROL_HASH = "31d6cfe0d16ae931b73c59d7e0c089c0"  # NT hash of ""


@pytest.fixture(scope="module")
def root(clone) -> Path:
    (root,) = clone([NAME])
    for user in ("alice", "bob", "carol"):
        in_root(root, "useradd", "--no-create-home", user)
    return root


def _module(root: Path, tmp_path: Path, args: dict[str, Any], *, check: bool = False,
            diff: bool = False) -> dict[str, Any]:
    """The module's result for one call in ``root`` (ansible-playbook, JSON callback)."""
    (tmp_path / "hosts.json").write_text(json.dumps({"all": {"hosts": {NAME: {
        "ansible_connection": "community.general.chroot", "ansible_host": str(root)}}}}))
    (tmp_path / "play.yml").write_text(json.dumps([{
        "hosts": "all", "gather_facts": False,
        "tasks": [{"name": "accounts", "hearth_samba_accounts": args}],
    }]))
    env = {"ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
           "ANSIBLE_LIBRARY": str(ANSIBLE_DIR / "library"),
           "ANSIBLE_HOME": str(tmp_path / "home"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
           "ANSIBLE_REMOTE_TEMP": str(tmp_path / "remote"),
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i",
            str(tmp_path / "hosts.json"), str(tmp_path / "play.yml")]
    argv += ["--check"] * check + ["--diff"] * diff
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    try:
        (task,) = json.loads(proc.stdout)["plays"][0]["tasks"]
    except (ValueError, KeyError) as exc:
        raise AssertionError(proc.stdout[-3000:] + proc.stderr[-3000:]) from exc
    result: dict[str, Any] = task["hosts"][NAME]
    result["_raw"] = proc.stdout
    return result


def _hashes(root: Path) -> dict[str, str]:
    out = {}
    for line in in_root(root, "pdbedit", "-L", "-w").stdout.splitlines():
        fields = line.split(":")
        out[fields[0]] = fields[3]
    return out


@pytest.mark.parametrize(("entry", "complaint"), [
    pytest.param({"name": "alice", "nthash": ALICE_HASH}, "missing required arguments: nt_hash",
                 id="misspelt"),
    # The password in clear is no longer an option: refused, not silently ignored.
    pytest.param({"name": "alice", "nt_hash": ALICE_HASH, "password": "password"},
                 "Unsupported parameters", id="plaintext"),
])
def test_an_unknown_or_missing_sub_option_is_an_error(
        root: Path, tmp_path: Path, entry: dict[str, str], complaint: str) -> None:
    result = _module(root, tmp_path, {"accounts": ["alice"], "passwords": [entry]})
    assert result["failed"]
    assert complaint in result["msg"]
    if "nt_hash" in entry:  # a misspelt key is not known to be secret: Ansible shows it
        assert ALICE_HASH not in result["_raw"]
    assert _hashes(root) == {}


def test_one_failing_account_does_not_stop_the_others(root: Path, tmp_path: Path) -> None:
    # ghost has no Unix user: pdbedit cannot add it; dave's hash is malformed.
    result = _module(root, tmp_path, {
        "accounts": ["ghost", "alice", "dave", "bob"],
        "passwords": [{"name": "alice", "nt_hash": ALICE_HASH.upper()},
                      {"name": "dave", "nt_hash": "not-a-hash"}],
    })
    assert result["failed"]
    assert result["msg"] == "samba accounts not converged: dave, ghost"
    assert [f["name"] for f in result["failed_accounts"]] == ["dave", "ghost"]
    assert result["failed_accounts"][0]["msg"] == "nt_hash is not 32 hexadecimal digits"
    assert result["failed_accounts"][1]["msg"].startswith("pdbedit -a -t -u ghost failed")
    assert result["changes"] == ["samba account alice added",
                                 "samba account bob added (no password given: a random one)"]
    hashes = _hashes(root)
    assert sorted(hashes) == ["alice", "bob"]
    assert hashes["alice"] == ALICE_HASH.upper()
    assert result["changed"]


def test_second_call_changes_nothing(root: Path, tmp_path: Path) -> None:
    result = _module(root, tmp_path, {
        "accounts": ["alice", "bob"], "passwords": [{"name": "alice", "nt_hash": ALICE_HASH}]})
    assert not result.get("failed")
    assert not result["changed"]
    assert result["changes"] == []


def test_dry_run_shows_a_diff_of_names_and_changes_nothing(root: Path, tmp_path: Path) -> None:
    before = _hashes(root)
    result = _module(root, tmp_path, {
        "accounts": ["alice", "carol"], "remove": ["bob"],
        "passwords": [{"name": "alice", "nt_hash": ALICE_NEW},
                      {"name": "carol", "nt_hash": CAROL_HASH}],
    }, check=True, diff=True)
    assert result["changed"]
    assert result["changes"] == ["samba password of alice set", "samba account carol added",
                                 "samba account bob removed"]
    assert result["diff"] == {"before_header": "samba accounts",
                              "after_header": "samba accounts",
                              "before": "alice\nbob\n",
                              "after": "alice (new password)\ncarol\n"}
    for secret in (ALICE_HASH, ALICE_NEW, CAROL_HASH):
        assert secret not in result["_raw"].lower()
    assert _hashes(root) == before


def test_hashes_are_set_without_a_command_line_holding_them(root: Path, tmp_path: Path) -> None:
    """A local user reading /proc/*/cmdline while the module runs never sees a hash."""
    proc_dir = root / "proc"
    subprocess.run(["mount", "-t", "proc", "proc", str(proc_dir)], check=True)
    try:
        (root / "tmp/poll.py").write_text(
            "import os, sys, time\n"
            "end = time.time() + float(sys.argv[1])\n"
            "seen = set()\n"
            "while time.time() < end and not os.path.exists('/tmp/poll.stop'):\n"
            "    for pid in os.listdir('/proc'):\n"
            "        try:\n"
            "            with open(f'/proc/{pid}/cmdline', 'rb') as fh:\n"
            "                seen.add(fh.read().replace(b'\\0', b' ').decode(errors='replace'))\n"
            "        except (OSError, ValueError):\n"
            "            pass\n"
            "print('\\n'.join(sorted(seen)))\n")
        poller: dict[str, str] = {}

        def poll() -> None:
            poller["out"] = in_root(root, "setpriv", "--reuid=nobody", "--regid=nogroup",
                                    "--clear-groups", "python3", "/tmp/poll.py", "300").stdout

        thread = threading.Thread(target=poll)
        thread.start()
        result = _module(root, tmp_path, {
            "accounts": ["alice", "bob", "carol"], "remove": [],
            "passwords": [{"name": "alice", "nt_hash": ALICE_NEW},
                          {"name": "carol", "nt_hash": CAROL_HASH}],
        })
    finally:
        (root / "tmp/poll.stop").write_text("")
        thread.join()
        subprocess.run(["umount", str(proc_dir)], check=True)
    assert result["changes"] == ["samba password of alice set", "samba account carol added"]
    assert _hashes(root)["alice"] == ALICE_NEW.upper()
    assert _hashes(root)["carol"] == CAROL_HASH.upper()
    seen = poller["out"]
    assert "pdbedit" in seen  # the poller did see the module's commands
    for secret in (ALICE_NEW, CAROL_HASH):
        assert secret not in seen.lower()
