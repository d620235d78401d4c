"""hearth_users as a module: its descriptor helpers, its interface, and failures on a real root.

The helpers are imported from the module file (``importlib``) and run on a
temporary directory standing in for ``/``; the interface is checked through
``ansible-doc`` and a direct execution with arguments Ansible would refuse;
collecting failures and check mode are checked by converging real roots.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from engine.execution.extravars import ManagedInventory
from schemas.config import DesiredAppliance

from .desired import KEY, appliance_data
from .helpers import in_root

LIBRARY = Path(__file__).resolve().parents[2] / "ansible" / "library"
UID = 4242
GID = 4343


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hearth_users_under_test",
                                                  LIBRARY / "hearth_users.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hu = _load()


@pytest.fixture
def fds() -> Any:
    """Descriptors a test opened, closed afterwards."""
    opened: list[int] = []
    yield opened
    for fd in opened:
        os.close(fd)


def _same(fd: int, path: Path) -> bool:
    a, b = os.fstat(fd), path.lstat()
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _home(tmp_path: Path, name: str = "u") -> Path:
    home = tmp_path / "home" / name
    home.mkdir(parents=True)
    os.chown(home, UID, GID)
    return home


# --------------------------------------------------------------------------- #
# open_home
# --------------------------------------------------------------------------- #


def test_open_home_walks_real_directories(tmp_path: Path, fds: list[int]) -> None:
    home = _home(tmp_path)
    fds.append(hu.open_home("/home/u", root=str(tmp_path)))
    assert _same(fds[-1], home)


def test_open_home_follows_links_only_root_could_have_made(tmp_path: Path,
                                                          fds: list[int]) -> None:
    real = tmp_path / "srv" / "home" / "u"
    real.mkdir(parents=True)
    (tmp_path / "home").symlink_to("/srv/home")  # absolute: resolved inside the root
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "up").symlink_to("../../../../srv/home")  # never above the root
    (tmp_path / "links" / "rel").symlink_to("../srv/home")
    for path in ("/home/u", "/links/up/u", "/links/rel/u", "/home/../home/./u"):
        fds.append(hu.open_home(path, root=str(tmp_path)))
        assert _same(fds[-1], real), path


def test_open_home_refuses_a_link_the_user_owns(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "u").symlink_to("/etc")
    os.lchown(tmp_path / "home" / "u", UID, GID)
    with pytest.raises(hu.RefusedLayout) as caught:
        hu.open_home("/home/u", root=str(tmp_path))
    assert str(caught.value) == ("/home/u is a symbolic link a user could have made (not owned "
                                 "by root in a directory only root writes)")


def test_open_home_refuses_a_root_link_in_a_directory_others_write(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "u").symlink_to("/etc")
    with pytest.raises(hu.RefusedLayout) as caught:
        hu.open_home("/shared/u", root=str(tmp_path))
    assert "/shared/u is a symbolic link a user could have made" in str(caught.value)


def test_open_home_refuses_a_link_inside_the_home(tmp_path: Path) -> None:
    home = _home(tmp_path)
    (home / "sub").symlink_to("/etc")  # root-owned link, but in a directory the user writes
    with pytest.raises(hu.RefusedLayout):
        hu.open_home("/home/u/sub", root=str(tmp_path))


def test_open_home_missing_and_not_a_directory(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "file").write_text("x")
    with pytest.raises(FileNotFoundError):
        hu.open_home("/home/nobody", root=str(tmp_path))
    with pytest.raises(hu.RefusedLayout) as caught:
        hu.open_home("/home/file", root=str(tmp_path))
    assert str(caught.value) == "/home/file is a regular file, not a directory"
    with pytest.raises(hu.RefusedLayout):
        hu.open_home("home/u", root=str(tmp_path))


def test_open_home_stops_on_a_link_loop(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("/b")
    (tmp_path / "b").symlink_to("/a")
    with pytest.raises(hu.RefusedLayout) as caught:
        hu.open_home("/a", root=str(tmp_path))
    assert str(caught.value) == "too many symbolic links resolving /a"


# --------------------------------------------------------------------------- #
# open_ssh_dir
# --------------------------------------------------------------------------- #


def test_open_ssh_dir_creates_only_when_asked(tmp_path: Path, fds: list[int]) -> None:
    home = _home(tmp_path)
    fds.append(hu.open_home("/home/u", root=str(tmp_path)))
    assert hu.open_ssh_dir(fds[0], uid=UID, create=False) is None
    assert not (home / ".ssh").exists()
    fds.append(hu.open_ssh_dir(fds[0], uid=UID, create=True))
    st = (home / ".ssh").lstat()
    assert (stat.S_ISDIR(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid) == (True, 0o700, 0)
    assert _same(fds[-1], home / ".ssh")


@pytest.mark.parametrize(("plant", "message"), [
    (lambda ssh: ssh.symlink_to("/etc"), "~/.ssh is a symbolic link, not a directory"),
    (lambda ssh: ssh.write_text("x"), "~/.ssh is a regular file, not a directory"),
    (lambda ssh: (ssh.mkdir(), os.chown(ssh, UID + 1, GID)),
     f"~/.ssh is owned by uid {UID + 1}, not the user"),
], ids=["link", "file", "other-owner"])
def test_open_ssh_dir_refuses(tmp_path: Path, fds: list[int], plant: Any, message: str) -> None:
    home = _home(tmp_path)
    plant(home / ".ssh")
    fds.append(hu.open_home("/home/u", root=str(tmp_path)))
    for create in (False, True):
        with pytest.raises(hu.RefusedLayout) as caught:
            hu.open_ssh_dir(fds[0], uid=UID, create=create)
        assert str(caught.value) == message


def test_open_ssh_dir_refuses_a_home_of_another_user(tmp_path: Path, fds: list[int]) -> None:
    home = _home(tmp_path)
    os.chown(home, UID + 1, GID)
    fds.append(hu.open_home("/home/u", root=str(tmp_path)))
    with pytest.raises(hu.RefusedLayout) as caught:
        hu.open_ssh_dir(fds[0], uid=UID, create=True)
    assert str(caught.value) == f"the home directory is owned by uid {UID + 1}, not the user"
    assert not (home / ".ssh").exists()


# --------------------------------------------------------------------------- #
# read_authorized_keys and write_authorized_keys
# --------------------------------------------------------------------------- #


@pytest.fixture
def ssh(tmp_path: Path, fds: list[int]) -> tuple[Path, int]:
    """(~/.ssh path, its descriptor) of a user UID:GID, made by that user."""
    home = _home(tmp_path)
    (home / ".ssh").mkdir(mode=0o700)
    os.chown(home / ".ssh", UID, GID)
    fds.append(hu.open_home("/home/u", root=str(tmp_path)))
    fds.append(hu.open_ssh_dir(fds[0], uid=UID, create=False))
    return home / ".ssh", fds[-1]


def _user_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    os.chown(path, UID, GID)


def test_read_missing_and_the_size_cap(ssh: tuple[Path, int]) -> None:
    path, fd = ssh
    assert hu.read_authorized_keys(fd, uid=UID) == (None, None)
    _user_file(path / "authorized_keys", b"k" * 262144)
    content, st = hu.read_authorized_keys(fd, uid=UID)
    assert content == b"k" * 262144 and st.st_size == 262144
    _user_file(path / "authorized_keys", b"k" * 262145)
    with pytest.raises(hu.RefusedLayout) as caught:
        hu.read_authorized_keys(fd, uid=UID)
    assert str(caught.value) == "~/.ssh/authorized_keys is larger than 262144 bytes"


def test_read_does_not_read_a_file_the_user_does_not_own(ssh: tuple[Path, int],
                                                         tmp_path: Path) -> None:
    path, fd = ssh
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret:::\n")
    os.link(secret, path / "authorized_keys")  # a hard link: a regular file owned by root
    content, st = hu.read_authorized_keys(fd, uid=UID)
    assert content is None
    assert (st.st_uid, st.st_nlink) == (0, 2)


def test_read_refuses_links_and_special_files_without_blocking(ssh: tuple[Path, int]) -> None:
    path, fd = ssh
    keys = path / "authorized_keys"
    # a FIFO would block a plain open until a writer comes: fail rather than hang
    signal.signal(signal.SIGALRM, signal.default_int_handler)
    signal.alarm(5)
    try:
        for plant, message in [
            (lambda: keys.symlink_to("/etc/shadow"),
             "~/.ssh/authorized_keys is a symbolic link, not a regular file"),
            (lambda: os.mkfifo(keys), "~/.ssh/authorized_keys is a FIFO, not a regular file"),
            (lambda: keys.mkdir(), "~/.ssh/authorized_keys is a directory, not a regular file"),
        ]:
            plant()
            with pytest.raises(hu.RefusedLayout) as caught:
                hu.read_authorized_keys(fd, uid=UID)
            assert str(caught.value) == message
            keys.rmdir() if keys.is_dir() and not keys.is_symlink() else keys.unlink()
    finally:
        signal.alarm(0)


def test_write_replaces_without_writing_through(ssh: tuple[Path, int], tmp_path: Path) -> None:
    path, fd = ssh
    os.chown(path, 0, 0)  # root-made ~/.ssh: given to the user through its descriptor
    path.chmod(0o755)
    outside = tmp_path / "passwd"
    outside.write_bytes(b"root:x:0:0::/root:/bin/bash\n")
    outside.chmod(0o644)
    (path / "authorized_keys.hearth-tmp").symlink_to(outside)  # the old fixed temp name
    os.link(outside, path / "authorized_keys")  # and a hard link under the real name

    hu.write_authorized_keys(fd, b"ssh-ed25519 AAAA one\n", uid=UID, gid=GID)

    keys = (path / "authorized_keys").lstat()
    assert (stat.S_ISREG(keys.st_mode), keys.st_uid, keys.st_gid, stat.S_IMODE(keys.st_mode),
            keys.st_nlink) == (True, UID, GID, 0o600, 1)
    assert (path / "authorized_keys").read_bytes() == b"ssh-ed25519 AAAA one\n"
    st = path.lstat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (UID, GID, 0o700)
    st = outside.lstat()
    assert (outside.read_bytes(), st.st_uid, stat.S_IMODE(st.st_mode), st.st_nlink) == (
        b"root:x:0:0::/root:/bin/bash\n", 0, 0o644, 1)
    assert os.readlink(path / "authorized_keys.hearth-tmp") == str(outside)
    assert sorted(os.listdir(path)) == ["authorized_keys", "authorized_keys.hearth-tmp"]


def test_write_refuses_more_than_the_cap(ssh: tuple[Path, int]) -> None:
    path, fd = ssh
    with pytest.raises(hu.RefusedLayout) as caught:
        hu.write_authorized_keys(fd, b"k" * 262145, uid=UID, gid=GID)
    assert str(caught.value) == "the keys are 262145 bytes, more than 262144"
    assert os.listdir(path) == []


def test_commands_time_out_and_a_failure_does_not_stop_the_next(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hu, "COMMAND_TIMEOUT", 0.5)
    converger = hu.Converger(check_mode=False)  # reads this machine's account files, no more
    assert converger.run(["sleep", "30"], "slow step") is False
    assert converger.run(["false"], "failing step") is False
    assert converger.run(["true"], "good step") is True
    assert converger.failures == ["slow step: not done, sleep did not finish within 0.5 s",
                                  "failing step: not done, false exited 1"]
    assert converger.changes == ["good step"]


# --------------------------------------------------------------------------- #
# Interface
# --------------------------------------------------------------------------- #


def _spec_of(options: dict[str, Any]) -> dict[str, Any]:
    """The argument spec a DOCUMENTATION options block describes."""
    out = {}
    for name, doc in options.items():
        entry = {k: doc[k] for k in ("type", "elements", "default") if k in doc}
        if doc.get("required"):
            entry["required"] = True
        if "suboptions" in doc:
            entry["options"] = _spec_of(doc["suboptions"])
        out[name] = entry
    return out


def _without_no_log(spec: dict[str, Any]) -> dict[str, Any]:
    return {name: {k: (_without_no_log(v) if k == "options" else v)
                   for k, v in entry.items() if k != "no_log"}
            for name, entry in spec.items()}


def test_documentation_describes_the_argument_spec() -> None:
    documented = _spec_of(yaml.safe_load(hu.DOCUMENTATION)["options"])
    assert documented == _without_no_log(hu.ARGUMENT_SPEC)
    assert hu.ARGUMENT_SPEC["password_hashes"]["options"]["hash"]["no_log"] is True
    # exactly the keys the engine sends for a user (engine/execution/extravars.py: _users)
    assert sorted(hu.USER_OPTIONS) == ["full_name", "groups", "name", "password", "shell",
                                       "ssh_keys", "uid"]
    assert sorted(hu.GROUP_OPTIONS) == ["gid", "name"]


def test_ansible_doc_renders_the_module() -> None:
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "-M", str(LIBRARY),
                           "hearth_users"], capture_output=True, text=True, check=False,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "[ERROR]" not in proc.stderr
    for word in ("password_hashes", "ssh_keys", "EXAMPLES", "RETURN VALUES", "failures"):
        assert word in proc.stdout, word


@pytest.mark.parametrize(("args", "message"), [
    ({"users": [{"name": "x", "fullname": "y"}]},
     "Unsupported parameters for (basic.py) module: users.fullname. Supported parameters "
     "include: full_name, groups, name, password, shell, ssh_keys, uid."),
    ({"groups": [{"name": "g", "gid": 1, "description": "d"}]},
     "Unsupported parameters for (basic.py) module: groups.description. Supported parameters "
     "include: gid, name."),
    ({"password_hashes": [{"name": "x", "hash": "$6$never-shown$", "hsah": "y"}]},
     "Unsupported parameters for (basic.py) module: password_hashes.hsah. Supported "
     "parameters include: hash, name."),
    ({"users": [{"name": "x", "uid": "not-a-number"}]},
     "argument 'uid' is of type str found in 'users'. and we were unable to convert to "
     "int: \"'not-a-number'\" cannot be converted to an int"),
], ids=["user-key", "group-key", "hash-key", "uid-type"])
def test_a_typo_is_an_error(tmp_path: Path, args: dict[str, Any], message: str) -> None:
    # Validation happens before the module reads or runs anything, so running it on
    # this machine with arguments it refuses touches nothing.
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args,
                                                              "_ansible_check_mode": True}}))
    proc = subprocess.run([sys.executable, str(LIBRARY / "hearth_users.py"), str(args_file)],
                          capture_output=True, text=True, check=False, timeout=60)
    result = json.loads(proc.stdout)
    assert (proc.returncode, result["failed"], result["msg"]) == (1, True, message)
    assert "never-shown" not in proc.stdout


# --------------------------------------------------------------------------- #
# On a real root
# --------------------------------------------------------------------------- #

KEY2 = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBh5m2Qf0vJwK8s3nZp4c7yT1xR6dL9eW2aU5iO0kHgN "
        "second@desk")


def _users_event(result: Any) -> dict[str, Any]:
    (event,) = [e for e in result.events if e["task"] == "Users and groups"
                and e["event"] in ("runner_on_ok", "runner_on_failed")]
    return event


@pytest.mark.e2e
@pytest.mark.slow
def test_one_failure_does_not_stop_the_other_changes(clone, converge) -> None:
    name = "users-failures"
    (root,) = clone([name])
    in_root(root, "useradd", "-u", "2101", "mallory")  # bob's uid, taken
    in_root(root, "groupadd", "olds")
    in_root(root, "useradd", "-g", "olds", "oldie")  # olds cannot be deleted: oldie's group
    desired = DesiredAppliance.model_validate(appliance_data(name))

    result = converge({root: desired}, domains=["users"],
                      **{name: {"previous": ManagedInventory(groups=["olds"]), "prune": True}})

    assert not result.succeeded
    event = _users_event(result)
    assert event["msg"] == (
        "2 user change(s) failed: "
        "user bob added: not done, useradd exited 4: useradd: UID 2101 is not unique; "
        "group olds removed: not done, groupdel exited 8: "
        "groupdel: cannot remove the primary group of user 'oldie'")
    # the image has Debian's own group staff (gid 50): Hearth's gid wins
    assert event["changes"] == ["group staff gid -> 2000", "group finance added",
                                "user alice added", "user alice ssh keys"]
    assert event["changed"] is True
    passwd = (root / "etc/passwd").read_text()
    assert "alice:x:2100:2100:" in passwd
    assert "bob:" not in passwd
    assert (root / "home/alice/.ssh/authorized_keys").read_text() == KEY + "\n"


@pytest.mark.e2e
@pytest.mark.slow
def test_check_mode_lists_what_the_real_run_does(clone, converge) -> None:
    name = "users-check"
    (root,) = clone([name])
    data = appliance_data(name)
    steps = [
        (DesiredAppliance.model_validate(data),
         ["group staff gid -> 2000", "group finance added", "user alice added",
          "user alice ssh keys", "user bob added"]),
    ]
    data = appliance_data(name)
    data["users"]["users"][0]["ssh_keys"] = [KEY, KEY2]
    data["users"]["users"][1].update(full_name="Bob the Builder", groups=[], ssh_keys=[KEY2])
    data["users"]["groups"].append({"name": "ops", "gid": 2002})
    steps.append((DesiredAppliance.model_validate(data),
                  ["group ops added", "user alice ssh keys",
                   "user bob modified (['-c', '-G'])", "user bob ssh keys"]))
    for desired, expected in steps:
        before = {p: (root / p).read_bytes() for p in ("etc/passwd", "etc/group", "etc/shadow")}
        dry = converge({root: desired}, domains=["users"], check=True)
        assert dry.succeeded, dry.events
        assert _users_event(dry)["changes"] == expected
        assert {p: (root / p).read_bytes() for p in before} == before
        real = converge({root: desired}, domains=["users"])
        assert real.succeeded, real.events
        assert _users_event(real)["changes"] == expected
