#!/usr/bin/python3
"""Converge Samba's passdb accounts and their NT hashes in one module execution.

Contract. ``accounts`` must exist in passdb, ``remove`` must not; for the
accounts listed in ``passwords`` the NT hash Samba stores must equal the one
given. Nothing else is touched. The box never receives a Samba password in
clear: the engine decrypts the vault value and computes the NT hash (MD4 of the
UTF-16LE password; the box's hashlib has no MD4 under OpenSSL 3), and only the
hash comes here (``no_log``).

How:

* ``pdbedit -L -w`` lists the accounts with their NT hashes (smbpasswd format,
  ``name:uid:LMHASH:NTHASH:[flags]:LCT-...:``).
* A missing account is added with ``pdbedit -a -t``, which always asks for a
  password: it reads a random one, made here, twice from stdin. When a hash
  is given it then replaces that password, as below; otherwise the account
  keeps the random password nobody knows (it exists, owns its SID and is
  reported; a person sets a password with ``smbpasswd``).
* A hash is set through Samba's own passdb library (``samba.samba3.passdb``,
  from python3-samba, which the samba package depends on): the same call
  ``pdbedit --set-nt-hash`` makes, but in this process. ``pdbedit
  --set-nt-hash HASH`` would put the hash on a command line, which any local
  user can read from /proc/<pid>/cmdline while pdbedit runs (tried: a poller
  running as ``nobody`` caught every call), and an NT hash logs on to Samba as
  well as the password does.
* Equal hashes change nothing, so a second run reports no change.
* Each account is converged on its own: one that fails (a timeout, a missing
  Unix user, a malformed hash) is reported and the others still converge; the
  task then fails naming the accounts that did not.
* Change messages and diffs name accounts, never a password or a hash.
  ``no_log`` is on the hash sub-option, not on the whole list: Ansible masks
  every string of a no_log value wherever it appears in the result, and the
  user names in the messages would become ``********``.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hearth_samba_accounts
short_description: Add and remove Samba passdb accounts and set their NT hashes
description:
  - Converges Samba's passdb in one execution. Accounts in O(accounts) are added when
    missing, accounts in O(remove) are deleted when present, and the accounts in
    O(passwords) get the given NT hash when theirs differs.
  - Only NT hashes reach the box, never a Samba password in clear. Hashes are set through
    Samba's passdb library in the module's process, never on a command line.
  - One failing account does not stop the others; the task then fails and names it.
  - Supports check mode and diff mode; the diff lists account names only.
version_added: "0.1.0"
author: Hearth
options:
  accounts:
    description: Names of the accounts that must exist. Each needs a Unix user of that name.
    type: list
    elements: str
    default: []
  remove:
    description: Names of the accounts to delete when present.
    type: list
    elements: str
    default: []
  passwords:
    description:
      - NT hashes to set, one entry per account. An account of O(accounts) without an entry
        is created with a random password nobody knows.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The account name.
        type: str
        required: true
      nt_hash:
        description: MD4 of the UTF-16LE password, 32 hexadecimal digits (either case).
        type: str
        required: true
        no_log: true
  timeout:
    description: Seconds each Samba command may take before the account it serves fails.
    type: int
    default: 60
notes:
  - Needs C(pdbedit) and python3-samba on the box (both come with Debian's samba package).
"""

EXAMPLES = r"""
- name: Samba accounts of share users
  hearth_samba_accounts:
    accounts: [alice, bob]
    remove: [carol]
    passwords:
      - name: alice
        nt_hash: 8846f7eaee8fb117ad06bdd830b7586c
"""

RETURN = r"""
changes:
  description: What changed (or would change in check mode), one message per account.
  returned: always
  type: list
  elements: str
  sample: ["samba account alice added", "samba password of bob set",
           "samba account carol removed"]
failed_accounts:
  description: Accounts that could not be converged, with the reason (never a hash).
  returned: when an account failed
  type: list
  elements: dict
  sample: [{"name": "dave", "msg": "pdbedit -a -t -u dave failed: Failed to add entry"}]
diff:
  description: The managed account names before and after, one a line (with --diff).
  returned: when diff mode is on and something changed
  type: dict
"""

ARGUMENT_SPEC = {
    "accounts": {"type": "list", "elements": "str", "default": []},
    "remove": {"type": "list", "elements": "str", "default": []},
    "passwords": {
        "type": "list", "elements": "dict", "default": [],
        "options": {
            "name": {"type": "str", "required": True},
            "nt_hash": {"type": "str", "required": True, "no_log": True},
        },
    },
    "timeout": {"type": "int", "default": 60},
}

_NT_HASH = re.compile(r"^[0-9A-Fa-f]{32}$")


class AccountError(Exception):
    """One account could not be converged; the message names no secret."""


def run(argv, *, timeout, stdin=None):
    """Run a Samba tool; AccountError when it fails or outlives ``timeout``."""
    try:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise AccountError(f"{' '.join(argv)} timed out after {timeout} s") from None
    except OSError as exc:
        raise AccountError(f"{argv[0]}: {exc.strerror}") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        raise AccountError(f"{' '.join(argv)} failed: {detail[-1] if detail else proc.returncode}")
    return proc.stdout


def listed(timeout):
    """Account name -> its NT hash in upper-case hex (as pdbedit prints it)."""
    accounts = {}
    for line in run(["pdbedit", "-L", "-w"], timeout=timeout).splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[0]:
            accounts[fields[0]] = fields[3].upper()
    return accounts


class PassdbWriter:
    """Sets NT hashes through Samba's passdb library (opened on first use)."""

    def __init__(self):
        self._pdb = None

    def set_nt_hash(self, name, nt_hash):
        try:
            # python3-samba is only needed when a hash is set; importing it costs ~0.3 s.
            from samba.samba3 import param, passdb

            if self._pdb is None:
                lp = param.get_context()
                lp.load_default()
                passdb.set_secrets_dir(lp.get("private dir"))
                self._pdb = passdb.PDB(lp.get("passdb backend"))
            user = self._pdb.getsampwnam(name)
            user.nt_passwd = bytes.fromhex(nt_hash)
            user.pass_last_set_time = int(time.time())
            self._pdb.update_sam_account(user)
        except ImportError:
            raise AccountError("python3-samba (samba.samba3.passdb) is not installed") from None
        except Exception as exc:  # passdb.error and friends: report, never the hash
            raise AccountError(f"setting the NT hash of {name} failed: {exc}") from None


def converge(module):
    params = module.params
    timeout = params["timeout"]
    have = listed(timeout)
    wanted = {entry["name"]: entry["nt_hash"].upper() for entry in params["passwords"]}
    writer = PassdbWriter()
    changes, failed = [], []
    after, reset = set(have), set()

    def attempt(name, message, action):
        changes.append(message)
        if module.check_mode:
            return True
        try:
            action()
        except AccountError as exc:
            changes.pop()
            failed.append({"name": name, "msg": str(exc)})
            return False
        return True

    for name, nt_hash in wanted.items():
        if not _NT_HASH.match(nt_hash):
            failed.append({"name": name, "msg": "nt_hash is not 32 hexadecimal digits"})
    bad = {entry["name"] for entry in failed}
    for name in params["accounts"]:
        if name in bad:
            continue
        nt_hash = wanted.get(name)
        if name not in have:
            def add(name=name, nt_hash=nt_hash):
                password = secrets.token_urlsafe(24)  # replaced below when a hash is given
                run(["pdbedit", "-a", "-t", "-u", name], timeout=timeout,
                    stdin=f"{password}\n{password}\n")
                if nt_hash:
                    writer.set_nt_hash(name, nt_hash)
            message = (f"samba account {name} added" if nt_hash else
                       f"samba account {name} added (no password given: a random one)")
            if attempt(name, message, add):
                after.add(name)
        elif nt_hash and have[name] != nt_hash:
            if attempt(name, f"samba password of {name} set",
                       lambda name=name, nt_hash=nt_hash: writer.set_nt_hash(name, nt_hash)):
                reset.add(name)
    for name in params["remove"]:
        if name not in have:
            continue
        if attempt(name, f"samba account {name} removed",
                   lambda name=name: run(["pdbedit", "-x", "-u", name], timeout=timeout)):
            after.discard(name)
    return have, after, reset, changes, failed


def diff(have, after, reset, managed):
    """Names only: the managed accounts before and after, a changed password marked."""
    before_names = sorted(n for n in have if n in managed)
    after_names = sorted(n for n in after if n in managed)
    return {
        "before_header": "samba accounts", "after_header": "samba accounts",
        "before": "".join(f"{n}\n" for n in before_names),
        "after": "".join(f"{n} (new password)\n" if n in reset else f"{n}\n"
                         for n in after_names),
    }


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        have, after, reset, changes, failed = converge(module)
    except AccountError as exc:  # the listing itself failed: nothing was changed
        module.fail_json(msg=str(exc), changes=[])
    result = {"changed": bool(changes), "changes": changes}
    if module._diff and changes:
        managed = set(module.params["accounts"]) | set(module.params["remove"])
        result["diff"] = diff(have, after, reset, managed)
    if failed:
        names = ", ".join(entry["name"] for entry in failed)
        module.fail_json(msg=f"samba accounts not converged: {names}",
                         failed_accounts=failed, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
