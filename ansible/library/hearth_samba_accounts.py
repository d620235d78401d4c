#!/usr/bin/python3
"""Converge Samba's passdb accounts for share users in one module execution.

``pdbedit -L`` lists the accounts; missing ones are added with
``pdbedit -a -t`` reading the password from stdin (never a command line).
Hearth's desired state holds a crypt(3) hash for the Unix password, from
which an NT hash cannot be derived, so a new Samba account gets a random
password nobody knows: it exists, owns its SID and is reported, and the
password is set by the person (``smbpasswd``) or by a later schema field
carrying a vault-encrypted NT hash. ``remove`` names accounts to delete
(the engine lists only accounts Hearth manages).
"""

from __future__ import annotations

import secrets
import subprocess

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hearth_samba_accounts
short_description: Add and remove Samba passdb accounts
options:
  accounts: {type: list, elements: str, default: []}
  remove: {type: list, elements: str, default: []}
"""


def listed(module):
    proc = subprocess.run(["pdbedit", "-L"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        module.fail_json(msg=f"pdbedit -L failed: {proc.stderr.strip()}")
    return {line.split(":", 1)[0] for line in proc.stdout.splitlines() if ":" in line}


def main():
    module = AnsibleModule(
        argument_spec={
            "accounts": {"type": "list", "elements": "str", "default": []},
            "remove": {"type": "list", "elements": "str", "default": []},
        },
        supports_check_mode=True,
    )
    have = listed(module)
    changes = []
    for name in module.params["accounts"]:
        if name in have:
            continue
        changes.append(f"samba account {name} added")
        if module.check_mode:
            continue
        password = secrets.token_urlsafe(24)
        proc = subprocess.run(["pdbedit", "-a", "-t", "-u", name],
                              input=f"{password}\n{password}\n",
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            module.fail_json(msg=f"pdbedit -a {name} failed: {proc.stderr.strip()}",
                             changes=changes)
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
