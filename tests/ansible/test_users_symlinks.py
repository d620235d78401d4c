"""A local user cannot turn the key step into a root write: hostile layouts on a real root.

Each case converges a fresh root once (alice with one key, bob with none), then
plants in alice's home what alice herself could (a link, a FIFO, a hard link,
owned by her uid with ``lchown``), then converges again with new keys for both.
The account files and /etc must be exactly as before (bytes, owner, mode,
listing); alice's key step either succeeds without writing through the trap or
fails with a message naming it; bob's keys are written either way.

Paths inside the root are only ever looked at with ``lstat``/``readlink`` here:
a planted link points at /etc/shadow, which from outside the chroot is the
host's.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from schemas.config import DesiredAppliance

from .desired import KEY, appliance_data

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KEY2 = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBh5m2Qf0vJwK8s3nZp4c7yT1xR6dL9eW2aU5iO0kHgN "
        "second@desk")
ALICE_UID = 2100
ALICE_GID = 2100
ALICE_KEYS = f"{KEY}\n{KEY2}\n".encode()
BOB_KEYS = f"{KEY2}\n".encode()


def _desired(name: str, *, second: bool) -> DesiredAppliance:
    data = appliance_data(name)
    if second:
        data["users"]["users"][0]["ssh_keys"] = [KEY, KEY2]
        data["users"]["users"][1]["ssh_keys"] = [KEY2]
    return DesiredAppliance.model_validate(data)


def _as_alice(path: Path) -> None:
    os.lchown(path, ALICE_UID, ALICE_GID)


def _link(path: Path, target: str) -> None:
    path.symlink_to(target)
    _as_alice(path)


def stale_temp_name(root: Path) -> None:
    """The temp name the module used to write through: a link to /etc/passwd."""
    _link(root / "home/alice/.ssh/authorized_keys.hearth-tmp", "/etc/passwd")


def keys_link_to_shadow(root: Path) -> None:
    (root / "home/alice/.ssh/authorized_keys").unlink()
    _link(root / "home/alice/.ssh/authorized_keys", "/etc/shadow")


def ssh_dir_link_to_etc(root: Path) -> None:
    shutil.rmtree(root / "home/alice/.ssh")
    _link(root / "home/alice/.ssh", "/etc")


def keys_fifo(root: Path) -> None:
    path = root / "home/alice/.ssh/authorized_keys"
    path.unlink()
    os.mkfifo(path, 0o600)
    _as_alice(path)


def home_link_to_etc(root: Path) -> None:
    shutil.rmtree(root / "home/alice")
    _link(root / "home/alice", "/etc")


def keys_hard_link_to_passwd(root: Path) -> None:
    path = root / "home/alice/.ssh/authorized_keys"
    path.unlink()
    os.link(root / "etc/passwd", path)


# (trap, what the failed run says about alice, or None when her keys must be written)
CASES: list[tuple[Callable[[Path], None], str | None]] = [
    (stale_temp_name, None),
    (keys_link_to_shadow, "user alice ssh keys: not done, ~/.ssh/authorized_keys is a symbolic "
                          "link, not a regular file (home /home/alice)"),
    (ssh_dir_link_to_etc, "user alice ssh keys: not done, ~/.ssh is a symbolic link, not a "
                          "directory (home /home/alice)"),
    (keys_fifo, "user alice ssh keys: not done, ~/.ssh/authorized_keys is a FIFO, not a regular "
                "file (home /home/alice)"),
    (home_link_to_etc, "user alice ssh keys: not done, /home/alice is a symbolic link a user "
                       "could have made (not owned by root in a directory only root writes) "
                       "(home /home/alice)"),
    (keys_hard_link_to_passwd, None),
]


def _snapshot(root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("passwd", "shadow", "group", "gshadow"):
        path = root / "etc" / name
        st = path.lstat()
        out[name] = (path.read_bytes(), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode),
                     stat.S_IFMT(st.st_mode))
    st = (root / "etc").lstat()
    out["etc"] = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), stat.S_IFMT(st.st_mode),
                  sorted(os.listdir(root / "etc")))
    return out


def _keys_file(path: Path, uid: int) -> bytes:
    st = path.lstat()
    assert stat.S_ISREG(st.st_mode), path
    assert (st.st_uid, stat.S_IMODE(st.st_mode), st.st_nlink) == (uid, 0o600, 1), path
    return path.read_bytes()


@pytest.mark.parametrize(("trap", "message"), CASES, ids=[c[0].__name__ for c in CASES])
def test_hostile_layout_never_writes_outside_the_users_ssh_dir(
        clone, converge, trap: Callable[[Path], None], message: str | None) -> None:
    name = f"trap-{trap.__name__.replace('_', '-')}"[:40]
    (root,) = clone([name])
    first = converge({root: _desired(name, second=False)}, domains=["users"])
    assert first.succeeded, first.events
    assert _keys_file(root / "home/alice/.ssh/authorized_keys", ALICE_UID) == f"{KEY}\n".encode()

    trap(root)
    before = _snapshot(root)
    result = converge({root: _desired(name, second=True)}, domains=["users"])

    assert _snapshot(root) == before
    # bob's keys are written whatever alice's home holds
    assert _keys_file(root / "home/bob/.ssh/authorized_keys", 2101) == BOB_KEYS
    if message is None:
        assert result.succeeded, result.events
        assert _keys_file(root / "home/alice/.ssh/authorized_keys", ALICE_UID) == ALICE_KEYS
    else:
        assert not result.succeeded
        (failed,) = [e for e in result.events if e["event"] == "runner_on_failed"]
        assert failed["task"] == "Users and groups"
        assert failed["msg"] == f"1 user change(s) failed: {message}"
        assert failed["changes"] == ["user bob ssh keys"]
        assert failed["changed"] is True
    if trap is stale_temp_name:
        planted = root / "home/alice/.ssh/authorized_keys.hearth-tmp"
        assert os.readlink(planted) == "/etc/passwd"
        assert planted.lstat().st_uid == ALICE_UID
