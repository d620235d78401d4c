#!/usr/bin/python3
"""Converge all groups and users of an appliance in one module execution.

Reads /etc/group, /etc/passwd and /etc/shadow once, then calls the box's own
``groupadd``/``groupmod``/``groupdel``/``useradd``/``usermod``/``userdel`` (argv
lists, no shell) only for what differs. SSH keys are the exact content of
``~/.ssh/authorized_keys`` (0600, in a 0700 ``~/.ssh``, owned by the user).
Password hashes arrive in a ``no_log`` parameter and are set through
``chpasswd -e`` on stdin, never on a command line; a user without one keeps
whatever the box has (a new account is locked). Supplementary groups are set
exactly to the listed ones. ``remove_users``/``remove_groups`` name accounts to
delete (the engine lists only names Hearth manages); home directories are kept,
as the stock ``user`` module does with ``state: absent``.

Why a module: the stock ``group``, ``user`` and ``authorized_key`` modules cost
one execution (about 0.2 s) per item per host; a tenant of 50 users is 100+.
"""

from __future__ import annotations

import os
import subprocess

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hearth_users
short_description: Converge POSIX users, groups, SSH keys and password hashes at once
options:
  users: {type: list, elements: dict, default: []}
  groups: {type: list, elements: dict, default: []}
  remove_users: {type: list, elements: str, default: []}
  remove_groups: {type: list, elements: str, default: []}
  password_hashes:
    type: list
    elements: dict
    default: []
    description: name and hash (hash is no_log)
"""

# no_log on the hash only, not on the whole list: Ansible masks every string of a
# no_log value wherever it appears in the result, so the user names in the change
# messages would read "********".
HASH_OPTIONS = {
    "name": {"type": "str", "required": True},
    "hash": {"type": "str", "required": True, "no_log": True},
}


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
    def __init__(self, module):
        self.module = module
        self.changes = []
        self.reload()

    def reload(self):
        self.passwd = read_db("/etc/passwd")
        self.group = read_db("/etc/group")
        self.shadow = read_db("/etc/shadow")

    def run(self, argv, what, stdin=None):
        self.changes.append(what)
        if self.module.check_mode:
            return
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            self.module.fail_json(msg=f"{what}: {argv[0]} exited {proc.returncode}: "
                                      f"{(proc.stderr or proc.stdout).strip()}",
                                  changes=self.changes)

    def groups(self, groups):
        for g in groups:
            name, gid = g["name"], g.get("gid")
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
        full_name = u.get("full_name") or ""
        if ":" in full_name or "\n" in full_name:
            self.module.fail_json(msg=f"user {name}: a full name cannot contain ':' or a newline")
        groups = sorted(set(u.get("groups") or []))
        shell = u.get("shell") or "/bin/bash"
        uid = u.get("uid")
        if name not in self.passwd:
            argv = ["useradd", "-m", "-s", shell, "-c", full_name]
            if uid is not None:
                argv += ["-u", str(uid)]
            if groups:
                argv += ["-G", ",".join(groups)]
            self.run([*argv, name], f"user {name} added")
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
                self.run(["usermod", *argv, name], f"user {name} modified ({argv[0::2]})")
        if name in hashes:
            current = self.shadow.get(name, [name, ""])[1]
            if current != hashes[name]:
                self.run(["chpasswd", "-e"], f"user {name} password set",
                         stdin=f"{name}:{hashes[name]}\n")
        self.authorized_keys(name, u.get("ssh_keys") or [])

    def authorized_keys(self, name, keys):
        if self.module.check_mode and name not in self.passwd:
            if keys:
                self.changes.append(f"user {name} ssh keys")
            return
        self.passwd = read_db("/etc/passwd") if not self.module.check_mode else self.passwd
        fields = self.passwd[name]
        uid, gid, home = int(fields[2]), int(fields[3]), fields[5]
        ssh_dir = os.path.join(home, ".ssh")
        path = os.path.join(ssh_dir, "authorized_keys")
        wanted = "".join(k + "\n" for k in keys)
        current = None
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as fh:
                current = fh.read()
        if not keys and current is None:
            return
        if current == wanted:
            st = os.stat(path)
            if (st.st_mode & 0o777) == 0o600 and st.st_uid == uid:
                return
        self.changes.append(f"user {name} ssh keys")
        if self.module.check_mode:
            return
        os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
        os.chown(ssh_dir, uid, gid)
        os.chmod(ssh_dir, 0o700)
        tmp = path + ".hearth-tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(wanted)
        os.chown(tmp, uid, gid)
        os.chmod(tmp, 0o600)
        os.rename(tmp, path)


def main():
    module = AnsibleModule(
        argument_spec={
            "users": {"type": "list", "elements": "dict", "default": []},
            "groups": {"type": "list", "elements": "dict", "default": []},
            "remove_users": {"type": "list", "elements": "str", "default": []},
            "remove_groups": {"type": "list", "elements": "str", "default": []},
            "password_hashes": {"type": "list", "elements": "dict", "default": [],
                                "options": HASH_OPTIONS},
        },
        supports_check_mode=True,
    )
    c = Converger(module)
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
    module.exit_json(changed=bool(c.changes), changes=c.changes)


if __name__ == "__main__":
    main()
