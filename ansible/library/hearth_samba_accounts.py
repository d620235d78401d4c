#!/usr/bin/python3
"""Converge Samba's passdb accounts and their passwords in one module execution.

``pdbedit -L -w`` lists the accounts with their NT hashes (smbpasswd format,
``name:uid:LMHASH:NTHASH:[flags]:LCT-...:``). A missing account is added with
``pdbedit -a -t``; an existing one whose NT hash differs from the desired one
gets its password from ``smbpasswd -s``. Both read the password twice from
stdin, never from a command line (any user on the box can read
/proc/*/cmdline). Equal hashes change nothing, so a second run reports no
change.

``passwords`` (``no_log`` on the password and its hash) carries, for users
with a vault ``samba_password``, the plain password and its NT hash, which the
engine computes: the box's hashlib has no MD4 under OpenSSL 3, and this module
stays stdlib-only. A new account without a password gets a random one nobody
knows: it exists, owns its SID and is reported, and a person sets the password
(``smbpasswd``). ``remove`` names accounts to delete (the engine lists only
accounts Hearth manages). Change messages name the user, never a password or
a hash.
"""

from __future__ import annotations

import secrets
import subprocess

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hearth_samba_accounts
short_description: Add and remove Samba passdb accounts and set their passwords
options:
  accounts: {type: list, elements: str, default: []}
  remove: {type: list, elements: str, default: []}
  passwords:
    type: list
    elements: dict
    default: []
    description: name, password and nt_hash (password and nt_hash are no_log)
"""

# no_log on the secret sub-options, not on the whole list: Ansible masks every string
# of a no_log value wherever it appears in the result, and the user names in the
# change messages would become "********".
PASSWORD_OPTIONS = {
    "name": {"type": "str", "required": True},
    "password": {"type": "str", "required": True, "no_log": True},
    "nt_hash": {"type": "str", "required": True, "no_log": True},
}


def listed(module):
    """Account name -> its NT hash in upper-case hex (as pdbedit prints it)."""
    proc = subprocess.run(["pdbedit", "-L", "-w"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        module.fail_json(msg=f"pdbedit -L -w failed: {proc.stderr.strip()}")
    accounts = {}
    for line in proc.stdout.splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[0]:
            accounts[fields[0]] = fields[3].upper()
    return accounts


def run_with_password(module, argv, password, changes):
    """Run a Samba tool that reads the new password twice from stdin."""
    proc = subprocess.run(argv, input=f"{password}\n{password}\n", capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        module.fail_json(msg=f"{' '.join(argv)} failed: {proc.stderr.strip()}",
                         changes=changes)


def main():
    module = AnsibleModule(
        argument_spec={
            "accounts": {"type": "list", "elements": "str", "default": []},
            "remove": {"type": "list", "elements": "str", "default": []},
            "passwords": {"type": "list", "elements": "dict", "default": [],
                          "options": PASSWORD_OPTIONS},
        },
        supports_check_mode=True,
    )
    have = listed(module)
    wanted = {entry["name"]: entry for entry in module.params["passwords"]}
    changes = []
    for name in module.params["accounts"]:
        entry = wanted.get(name)
        if name not in have:
            changes.append(f"samba account {name} added" if entry else
                           f"samba account {name} added (no password given: a random one)")
            if not module.check_mode:
                password = entry["password"] if entry else secrets.token_urlsafe(24)
                run_with_password(module, ["pdbedit", "-a", "-t", "-u", name], password,
                                  changes)
        elif entry and have[name] != entry["nt_hash"].upper():
            changes.append(f"samba password of {name} set")
            if not module.check_mode:
                run_with_password(module, ["smbpasswd", "-s", name], entry["password"],
                                  changes)
    for name in module.params["remove"]:
        if name not in have:
            continue
        changes.append(f"samba account {name} removed")
        if module.check_mode:
            continue
        proc = subprocess.run(["pdbedit", "-x", "-u", name], capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            module.fail_json(msg=f"pdbedit -x {name} failed: {proc.stderr.strip()}",
                             changes=changes)
    module.exit_json(changed=bool(changes), changes=changes)


if __name__ == "__main__":
    main()
