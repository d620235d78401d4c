"""The agent reads a user's ``~/.ssh/authorized_keys`` as root without following the user.

On a real appliance root, a local user (alice) plants each trap a user can plant in
the files the agent reads as root: symlinks to /etc/shadow, to /dev/zero and to
root's own .ssh, a hard link to /etc/shadow, a FIFO, an oversized file. None may
put another file's content in the heartbeat, hang the agent or exhaust its memory:
the user's keys are reported as unknown (``ssh_keys`` null, ``ssh_keys_error`` set)
and the report still goes, in bounded time and memory (the run gets 60 s and 1 GiB
of address space). A plain file is still reported, so the checks do not simply
refuse everything.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.heartbeat import Heartbeat
from tests.ansible.helpers import in_root

AGENT = Path(__file__).resolve().parents[2] / "ansible/roles/agent/files/hearth-agent.py"
SHADOW_MARKER = "SHADOWSECRETMARKER"
ROOT_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIROOTKEYMARKER root@box"
ALICE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIALICEKEY alice@laptop"
ALICE_UID = 1001


@pytest.fixture(scope="module")
def root(clone: Callable[..., list[Path]]) -> Path:
    (box,) = clone(["agent-files"])
    in_root(box, "useradd", "--create-home", "--uid", str(ALICE_UID), "alice")
    with (box / "etc/shadow").open("a") as shadow:
        shadow.write(f"hearthmarker:$6${SHADOW_MARKER}$x:19000:0:99999:7:::\n")
    (box / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    (box / "root/.ssh/authorized_keys").write_text(ROOT_KEY + "\n")
    shutil.copy(AGENT, box / "usr/local/bin/hearth-agent")
    (box / "etc/hearth").mkdir(exist_ok=True)
    (box / "etc/hearth/agent.json").write_text(json.dumps({"state_dir": "/var/lib/hearth-agent"}))
    return box


@pytest.fixture
def ssh_dir(root: Path) -> Iterator[Path]:
    """alice's empty ~/.ssh (hers, 0700), cleared after each case."""
    path = root / "home/alice/.ssh"
    path.mkdir(mode=0o700)
    os.chown(path, ALICE_UID, ALICE_UID)
    yield path
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path)


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def report(root: Path) -> tuple[dict[str, Any], str]:
    """The heartbeat the agent prints inside the root, and everything it wrote."""
    started = time.monotonic()
    proc = subprocess.run(["chroot", str(root), "python3", "/usr/local/bin/hearth-agent",
                           "--print"], capture_output=True, text=True, timeout=60,
                          preexec_fn=_limits, check=False)
    assert time.monotonic() - started < 60
    assert proc.returncode == 0, proc.stderr[-2000:]
    Heartbeat.model_validate_json(proc.stdout)
    return json.loads(proc.stdout), proc.stdout + proc.stderr


def alice(heartbeat: dict[str, Any]) -> dict[str, Any]:
    (user,) = [u for u in heartbeat["observed"]["users"]["users"] if u["name"] == "alice"]
    return user


def _owned(path: Path) -> None:
    os.chown(path, ALICE_UID, ALICE_UID, follow_symlinks=False)


def plant_shadow_symlink(root: Path, ssh: Path) -> None:
    (ssh / "authorized_keys").symlink_to("/etc/shadow")
    _owned(ssh / "authorized_keys")


def plant_shadow_hard_link(root: Path, ssh: Path) -> None:
    os.link(root / "etc/shadow", ssh / "authorized_keys")


def plant_dev_zero_symlink(root: Path, ssh: Path) -> None:
    (ssh / "authorized_keys").symlink_to("/dev/zero")
    _owned(ssh / "authorized_keys")


def plant_ssh_dir_symlink(root: Path, ssh: Path) -> None:
    shutil.rmtree(ssh)
    ssh.symlink_to("/root/.ssh")
    _owned(ssh)


def plant_fifo(root: Path, ssh: Path) -> None:
    os.mkfifo(ssh / "authorized_keys")
    _owned(ssh / "authorized_keys")


def plant_oversized(root: Path, ssh: Path) -> None:
    line = ALICE_KEY + "\n"
    (ssh / "authorized_keys").write_text(line * (300 * 1024 // len(line)))
    _owned(ssh / "authorized_keys")


HOSTILE = [
    (plant_shadow_symlink, "/home/alice/.ssh/authorized_keys is a symlink"),
    (plant_shadow_hard_link, "/home/alice/.ssh/authorized_keys belongs to another user "
                             "or is a hard link"),
    (plant_dev_zero_symlink, "/home/alice/.ssh/authorized_keys is a symlink"),
    (plant_ssh_dir_symlink, "/home/alice/.ssh is a symlink or not a directory"),
    (plant_fifo, "/home/alice/.ssh/authorized_keys is not a regular file"),
    (plant_oversized, "/home/alice/.ssh/authorized_keys is larger than 262144 bytes"),
]


@pytest.mark.parametrize(("plant", "error"), HOSTILE,
                         ids=["shadow-symlink", "shadow-hard-link", "dev-zero-symlink",
                              "ssh-dir-symlink", "fifo", "oversized"])
def test_a_hostile_authorized_keys_is_reported_unknown_never_read(
        root: Path, ssh_dir: Path, plant: Callable[[Path, Path], None], error: str) -> None:
    plant(root, ssh_dir)
    heartbeat, output = report(root)
    assert SHADOW_MARKER not in output
    assert "ROOTKEYMARKER" not in output
    user = alice(heartbeat)
    assert user["ssh_keys"] is None
    assert user["ssh_keys_error"] == error


def test_a_plain_authorized_keys_of_the_user_is_reported(root: Path, ssh_dir: Path) -> None:
    (ssh_dir / "authorized_keys").write_text(f"# laptop\n{ALICE_KEY}\n")
    _owned(ssh_dir / "authorized_keys")
    heartbeat, _ = report(root)
    assert alice(heartbeat)["ssh_keys"] == [ALICE_KEY]
    assert "ssh_keys_error" not in alice(heartbeat)


def test_a_missing_ssh_directory_is_no_keys_not_unknown(root: Path) -> None:
    heartbeat, _ = report(root)
    assert alice(heartbeat)["ssh_keys"] == []
