#!/usr/bin/python3
"""Converge all groups and users of an appliance in one module execution.

Reads /etc/group, /etc/passwd and /etc/shadow once, then calls the box's own
``groupadd``/``groupmod``/``groupdel``/``useradd``/``usermod``/``userdel`` (argv
lists, no shell, each with a timeout) only for what differs. SSH keys are the
exact content of ``~/.ssh/authorized_keys`` (0600, in a ``~/.ssh`` owned by the
user). Password hashes arrive in a ``no_log`` parameter and are set through
``chpasswd -e`` on stdin, never on a command line; a user without one keeps
whatever the box has (a new account is locked). Supplementary groups are set
exactly to the listed ones. ``remove_users``/``remove_groups`` name accounts to
delete (the engine lists only names Hearth manages); home directories are kept,
as the stock ``user`` module does with ``state: absent``.

One failed change does not stop the others: every command runs, failures are
collected, and the module fails at the end listing each of them, with
``changes`` (and ``changed``) saying what was done all the same.

A user's home, ``~/.ssh`` and what is in it belong to that user, who may have
replaced any of them with a symbolic link, a FIFO or a hard link by the time we
run as root. So the key step never uses a path there: the home is opened from
``/`` one component at a time with ``O_NOFOLLOW`` (a link is followed only when
root owns it and it sits in a directory only root can write, like an
administrator's ``/home -> /srv/home``); ``.ssh`` and ``authorized_keys`` are
opened relative to that directory's descriptor with ``O_NOFOLLOW``; the new file
is created under a random name with ``O_CREAT|O_EXCL|O_NOFOLLOW``, owned and
moded through its descriptor, fsynced and renamed into place within ``.ssh``.
Anything unexpected (a link, something other than a directory or a regular file,
a directory owned by someone else, a file over 256 KiB) fails that user's key
step with a message naming what was found; nothing is written, replaced or
chowned for that user, and the other users are converged.

Why a module: the stock ``group``, ``user`` and ``authorized_key`` modules cost
one execution (about 0.2 s) per item per host; a tenant of 50 users is 100+.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import subprocess

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hearth_users
short_description: Converge POSIX users, groups, SSH keys and password hashes at once
description:
  - Converges every group, user, supplementary group list, C(~/.ssh/authorized_keys) and
    password hash of the host in one execution, running C(groupadd), C(useradd), C(usermod),
    C(chpasswd), C(userdel) and C(groupdel) only for what differs.
  - A failed command does not stop the others; the module fails at the end listing every
    failure, and O(changes) still lists what was done.
  - The key step never follows a symbolic link the user could have made. A home, C(~/.ssh)
    or C(authorized_keys) that is a link, not a directory or regular file as expected, owned
    by another user, or (for the file) larger than 256 KiB, fails that user's key step;
    nothing is written for that user.
author: Hearth
attributes:
  check_mode:
    support: full
    description: Reports the same change list a real run would make, changing nothing.
options:
  users:
    description: Users that must exist, with exactly these attributes.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Login name.
        type: str
        required: true
      uid:
        description: User id; the box picks one when null.
        type: int
      full_name:
        description: GECOS field; cannot contain a colon or a line break.
        type: str
        default: ""
      groups:
        description: Supplementary groups, set exactly (the user leaves any group not listed).
        type: list
        elements: str
        default: []
      shell:
        description: Login shell.
        type: str
        default: /bin/bash
      ssh_keys:
        description:
          - Public keys, one line each; the exact content of C(~/.ssh/authorized_keys).
          - An empty list means no keys (an existing file is emptied).
        type: list
        elements: str
        default: []
      password:
        description:
          - Whether the engine holds a password hash for this user. Informational; the
            hash itself comes in O(password_hashes).
        type: bool
        default: false
  groups:
    description: Groups that must exist, created before the users.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Group name.
        type: str
        required: true
      gid:
        description: Group id; the box picks one when null.
        type: int
  remove_users:
    description: Users to delete (their home directories are kept). Names not on the box are ignored.
    type: list
    elements: str
    default: []
  remove_groups:
    description: Groups to delete, after the users. Names not on the box are ignored.
    type: list
    elements: str
    default: []
  password_hashes:
    description:
      - crypt(3) hashes to set with C(chpasswd -e) (on stdin). A user not listed keeps
        the hash the box has.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: User name.
        type: str
        required: true
      hash:
        description: The crypt(3) hash; never logged.
        type: str
        required: true
"""

EXAMPLES = r"""
- name: Users and groups
  hearth_users:
    groups:
      - {name: staff, gid: 2000}
    users:
      - name: alice
        uid: 2100
        full_name: Alice Example
        groups: [staff]
        ssh_keys:
          - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGz0Wq6Y2l8mK1vYzJ8n1d0Q5gC6w3bq8d7wK9m1yX2p alice@laptop
    password_hashes:
      - {name: alice, hash: "$6$salt$..."}
    remove_users: [bob]
"""

RETURN = r"""
changes:
  description: What was changed (in check mode, what would be), one line each, in order.
  returned: always
  type: list
  elements: str
  sample: ["group staff added", "user alice added", "user alice ssh keys"]
failures:
  description: Every change that failed, with the command's exit status and message.
  returned: failure
  type: list
  elements: str
  sample: ["user bob added: not done, useradd exited 4: useradd: UID 2101 is not unique"]
"""

COMMAND_TIMEOUT = 300
"""Seconds one command may take (``usermod -u`` re-owns a whole home directory)."""

AUTHORIZED_KEYS_MAX = 256 * 1024
"""Largest ``authorized_keys`` the module reads or writes, in bytes."""

# no_log on the hash only, not on the whole list: Ansible masks every string of a
# no_log value wherever it appears in the result, so the user names in the change
# messages would read "********".
HASH_OPTIONS = {
    "name": {"type": "str", "required": True},
    "hash": {"type": "str", "required": True, "no_log": True},
}
USER_OPTIONS = {
    "name": {"type": "str", "required": True},
    "uid": {"type": "int"},
    "full_name": {"type": "str", "default": ""},
    "groups": {"type": "list", "elements": "str", "default": []},
    "shell": {"type": "str", "default": "/bin/bash"},
    "ssh_keys": {"type": "list", "elements": "str", "default": []},
    "password": {"type": "bool", "default": False},
}
GROUP_OPTIONS = {
    "name": {"type": "str", "required": True},
    "gid": {"type": "int"},
}
ARGUMENT_SPEC = {
    "users": {"type": "list", "elements": "dict", "default": [], "options": USER_OPTIONS},
    "groups": {"type": "list", "elements": "dict", "default": [], "options": GROUP_OPTIONS},
    "remove_users": {"type": "list", "elements": "str", "default": []},
    "remove_groups": {"type": "list", "elements": "str", "default": []},
    "password_hashes": {"type": "list", "elements": "dict", "default": [],
                        "options": HASH_OPTIONS},
}


# --------------------------------------------------------------------------- #
# Paths a user can influence: descriptors only
# --------------------------------------------------------------------------- #


class RefusedLayout(Exception):
    """A user's home, ~/.ssh or authorized_keys is not laid out as expected; nothing was written."""


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_LINKS = 40
_KEYS = "authorized_keys"


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISREG, "a regular file"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "of an unknown file type"


def _only_root_writes(st: os.stat_result) -> bool:
    """Only root can add, remove or rename entries of a directory with this status."""
    return st.st_uid == 0 and not st.st_mode & 0o022


def open_home(home: str, *, root: str = "/") -> int:
    """A directory descriptor on ``home``, resolved from ``root`` one component at a time.

    Every component is opened with ``O_DIRECTORY|O_NOFOLLOW`` relative to the one
    before. A symbolic link is followed only when root owns it and the directory
    holding it can be written by root alone (nobody else can have made it);
    ``..`` steps back along the components actually walked, never above ``root``.
    Raises FileNotFoundError when a component is missing, RefusedLayout for
    anything else unexpected. The caller closes the descriptor.
    """
    if not home.startswith("/"):
        raise RefusedLayout(f"home directory {home!r} is not an absolute path")
    stack = [os.open(root, _DIR_FLAGS)]
    names: list[str] = []
    parts = [p for p in home.split("/") if p]
    links = 0
    try:
        while parts:
            name = parts.pop(0)
            if name == ".":
                continue
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                    names.pop()
                continue
            where = "/" + "/".join([*names, name])
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=stack[-1])
            except OSError as exc:
                if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                    raise
                st = os.stat(name, dir_fd=stack[-1], follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode):
                    raise RefusedLayout(f"{where} is {_kind(st.st_mode)}, not a directory") from None
                if st.st_uid != 0 or not _only_root_writes(os.fstat(stack[-1])):
                    raise RefusedLayout(f"{where} is a symbolic link a user could have made "
                                        "(not owned by root in a directory only root writes)"
                                        ) from None
                links += 1
                if links > _MAX_LINKS:
                    raise RefusedLayout(f"too many symbolic links resolving {home}") from None
                target = os.readlink(name, dir_fd=stack[-1])
                parts[:0] = [p for p in target.split("/") if p]
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                    names.clear()
                continue
            stack.append(fd)
            names.append(name)
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


def open_ssh_dir(home_fd: int, *, uid: int, create: bool) -> int | None:
    """A descriptor on ``.ssh`` in the home ``home_fd``; None when it is missing and not ``create``.

    The home must be owned by the user or root, ``.ssh`` must be a directory (not a
    link) owned by the user or root; a missing one is created 0700 (owned by root
    until ``write_authorized_keys`` gives it to the user through its descriptor).
    """
    home = os.fstat(home_fd)
    if home.st_uid not in (0, uid):
        raise RefusedLayout(f"the home directory is owned by uid {home.st_uid}, not the user")
    if create:
        try:
            os.mkdir(".ssh", 0o700, dir_fd=home_fd)
        except FileExistsError:
            pass
    try:
        fd = os.open(".ssh", _DIR_FLAGS, dir_fd=home_fd)
    except FileNotFoundError:
        if create:
            raise RefusedLayout("~/.ssh vanished right after it was created") from None
        return None
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        st = os.stat(".ssh", dir_fd=home_fd, follow_symlinks=False)
        raise RefusedLayout(f"~/.ssh is {_kind(st.st_mode)}, not a directory") from None
    st = os.fstat(fd)
    if st.st_uid not in (0, uid):
        os.close(fd)
        raise RefusedLayout(f"~/.ssh is owned by uid {st.st_uid}, not the user")
    return fd


def read_authorized_keys(ssh_fd: int, *, uid: int) -> tuple[bytes | None, os.stat_result | None]:
    """The current ``authorized_keys`` in ``ssh_fd``: (content, status).

    (None, None) when there is none. A regular file the user does not own is not
    read (content None: it will be replaced). A link, FIFO, device, socket or
    directory, or a file over AUTHORIZED_KEYS_MAX bytes, raises RefusedLayout;
    ``O_NONBLOCK`` keeps a FIFO from blocking the open.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    try:
        fd = os.open(_KEYS, flags, dir_fd=ssh_fd)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        try:
            st = os.stat(_KEYS, dir_fd=ssh_fd, follow_symlinks=False)
        except OSError:
            raise RefusedLayout(f"~/.ssh/{_KEYS} cannot be opened: {exc.strerror}") from None
        raise RefusedLayout(f"~/.ssh/{_KEYS} is {_kind(st.st_mode)}, "
                            "not a regular file") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise RefusedLayout(f"~/.ssh/{_KEYS} is {_kind(st.st_mode)}, not a regular file")
        if st.st_uid != uid:
            return None, st
        chunks = []
        size = 0
        while size <= AUTHORIZED_KEYS_MAX:
            chunk = os.read(fd, AUTHORIZED_KEYS_MAX + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > AUTHORIZED_KEYS_MAX:
            raise RefusedLayout(f"~/.ssh/{_KEYS} is larger than {AUTHORIZED_KEYS_MAX} bytes")
        return b"".join(chunks), st
    finally:
        os.close(fd)


def write_authorized_keys(ssh_fd: int, data: bytes, *, uid: int, gid: int) -> None:
    """Replace ``authorized_keys`` in ``ssh_fd`` with ``data``, owned uid:gid, 0600.

    ``.ssh`` itself is given to uid:gid, 0700, through its descriptor. The new
    content goes to a fresh randomly named file (``O_CREAT|O_EXCL|O_NOFOLLOW``, so
    nothing planted under any name is opened), owned and moded through its
    descriptor, fsynced, then renamed over the old name: a link or a hard link
    there is replaced, never written through. Afterwards the name must hold the
    file just written.
    """
    if len(data) > AUTHORIZED_KEYS_MAX:
        raise RefusedLayout(f"the keys are {len(data)} bytes, more than {AUTHORIZED_KEYS_MAX}")
    st = os.fstat(ssh_fd)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid not in (0, uid):
        raise RefusedLayout(f"~/.ssh is owned by uid {st.st_uid}, not the user")
    if (st.st_uid, st.st_gid) != (uid, gid):
        os.fchown(ssh_fd, uid, gid)
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.fchmod(ssh_fd, 0o700)
    name, fd = _create_temp(ssh_fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchown(fd, uid, gid)
            os.fchmod(fd, 0o600)
            os.fsync(fd)
            written = os.fstat(fd)
        finally:
            os.close(fd)
        os.rename(name, _KEYS, src_dir_fd=ssh_fd, dst_dir_fd=ssh_fd)
    except BaseException:
        try:
            os.unlink(name, dir_fd=ssh_fd)
        except OSError:
            pass
        raise
    os.fsync(ssh_fd)
    now = os.stat(_KEYS, dir_fd=ssh_fd, follow_symlinks=False)
    if (now.st_dev, now.st_ino) != (written.st_dev, written.st_ino):
        raise RefusedLayout(f"~/.ssh/{_KEYS} was replaced by someone else while being written")


def _create_temp(dir_fd: int) -> tuple[str, int]:
    """A new 0600 file with a random name in ``dir_fd``, as ``mkstemp`` makes them."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        name = f".{_KEYS}.hearth-{secrets.token_hex(8)}"
        try:
            return name, os.open(name, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise RefusedLayout("could not create a temporary file in ~/.ssh (100 names taken)")


# --------------------------------------------------------------------------- #
# The account databases and commands
# --------------------------------------------------------------------------- #


def read_db(path):
    entries = {}
    if not os.path.exists(path):
        return entries
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            fields = line.rstrip("\n").split(":")
            if fields and fields[0]:
                entries[fields[0]] = fields
    return entries


class Converger:
    """Compares and converges; collects ``changes`` and ``failures`` instead of stopping."""

    def __init__(self, *, check_mode):
        self.check_mode = check_mode
        self.changes = []
        self.failures = []
        self.reload()

    def reload(self):
        self.passwd = read_db("/etc/passwd")
        self.group = read_db("/etc/group")
        self.shadow = read_db("/etc/shadow")

    def run(self, argv, what, stdin=None):
        """Run one command; record ``what`` as a change or a failure. True when it succeeded."""
        if self.check_mode:
            self.changes.append(what)
            return True
        try:
            proc = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                                  check=False, timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.failures.append(f"{what}: not done, {argv[0]} did not finish within "
                                 f"{COMMAND_TIMEOUT} s")
            return False
        except OSError as exc:
            self.failures.append(f"{what}: not done, {argv[0]}: {exc.strerror}")
            return False
        if proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()
            self.failures.append(f"{what}: not done, {argv[0]} exited {proc.returncode}"
                                 + (f": {detail}" if detail else ""))
            return False
        self.changes.append(what)
        return True

    def groups(self, groups):
        for g in groups:
            name, gid = g["name"], g["gid"]
            if name not in self.group:
                argv = ["groupadd"] + (["-g", str(gid)] if gid is not None else []) + [name]
                self.run(argv, f"group {name} added")
            elif gid is not None and self.group[name][2] != str(gid):
                self.run(["groupmod", "-g", str(gid), name], f"group {name} gid -> {gid}")
        self.reload()

    def members_of(self, user):
        return sorted(g for g, fields in self.group.items()
                      if len(fields) > 3 and user in fields[3].split(","))

    def user(self, u, hashes):
        name = u["name"]
        full_name = u["full_name"] or ""
        if ":" in full_name or "\n" in full_name:
            self.failures.append(f"user {name}: not done, a full name cannot contain ':' or a "
                                 "newline")
            return
        groups = sorted(set(u["groups"] or []))
        shell = u["shell"] or "/bin/bash"
        uid = u["uid"]
        ran = False
        if name not in self.passwd:
            argv = ["useradd", "-m", "-s", shell, "-c", full_name]
            if uid is not None:
                argv += ["-u", str(uid)]
            if groups:
                argv += ["-G", ",".join(groups)]
            ran = self.run([*argv, name], f"user {name} added")
            if not ran:
                return  # no account: its password and keys cannot be set either
        else:
            fields = self.passwd[name]
            argv = []
            if uid is not None and fields[2] != str(uid):
                argv += ["-u", str(uid)]
            if fields[4] != full_name:
                argv += ["-c", full_name]
            if fields[6] != shell:
                argv += ["-s", shell]
            if self.members_of(name) != groups:
                argv += ["-G", ",".join(groups)]
            if argv:
                ran = self.run(["usermod", *argv, name], f"user {name} modified ({argv[0::2]})")
        if name in hashes:
            current = self.shadow.get(name, [name, ""])[1]
            if current != hashes[name]:
                self.run(["chpasswd", "-e"], f"user {name} password set",
                         stdin=f"{name}:{hashes[name]}\n")
        if ran and not self.check_mode:
            self.passwd = read_db("/etc/passwd")  # the new uid or home
        self.authorized_keys(name, u["ssh_keys"] or [])

    def authorized_keys(self, name, keys):
        what = f"user {name} ssh keys"
        if name not in self.passwd:  # check mode, user to be added: no home to read yet
            if keys:
                self.changes.append(what)
            return
        fields = self.passwd[name]
        try:
            changed = self.converge_keys(uid=int(fields[2]), gid=int(fields[3]), home=fields[5],
                                         wanted="".join(k + "\n" for k in keys).encode())
        except (RefusedLayout, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.failures.append(f"{what}: not done, {reason} (home {fields[5]})")
            return
        if changed:
            self.changes.append(what)

    def converge_keys(self, *, uid, gid, home, wanted):
        """Make authorized_keys hold ``wanted``; True when it changed (or would, in check mode)."""
        try:
            home_fd = open_home(home)
        except FileNotFoundError:
            if not wanted:
                return False
            raise RefusedLayout(f"the home directory {home} does not exist") from None
        try:
            ssh_fd = open_ssh_dir(home_fd, uid=uid, create=bool(wanted)
                                  and not self.check_mode)
            if ssh_fd is None:
                return bool(wanted)
            try:
                current, st = read_authorized_keys(ssh_fd, uid=uid)
                if st is None and not wanted:
                    return False
                if (current == wanted and st.st_uid == uid
                        and stat.S_IMODE(st.st_mode) == 0o600):
                    return False
                if not self.check_mode:
                    write_authorized_keys(ssh_fd, wanted, uid=uid, gid=gid)
                return True
            finally:
                os.close(ssh_fd)
        finally:
            os.close(home_fd)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    c = Converger(check_mode=module.check_mode)
    hashes = {e["name"]: e["hash"] for e in module.params["password_hashes"]}
    c.groups(module.params["groups"])
    for u in module.params["users"]:
        c.user(u, hashes)
    for name in module.params["remove_users"]:
        if name in c.passwd:
            c.run(["userdel", name], f"user {name} removed")
    c.reload()
    for name in module.params["remove_groups"]:
        if name in c.group:
            c.run(["groupdel", name], f"group {name} removed")
    result = {"changed": bool(c.changes), "changes": c.changes}
    if c.failures:
        module.fail_json(msg=f"{len(c.failures)} user change(s) failed: " + "; ".join(c.failures),
                         failures=c.failures, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
