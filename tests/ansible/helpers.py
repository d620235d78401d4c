"""Helpers of the Ansible tests: commands inside a root, the agent, comparisons.

``mismatches(desired, observed)`` compares the fields that should match
directly between a ``DesiredAppliance`` and the agent's observed state, after
the normalising a planner would do (absolute record targets, the SOA/NS the
role adds, the zone TTL as a record's default).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from engine.execution.extravars import record_data
from schemas.config import DesiredAppliance

VAULT_PASSWORD = "test-vault-password-0123"
"""The vault password of the Ansible tests' desired state."""


def vault(plain: str | bytes) -> str:
    """``plain`` encrypted as ``ansible-vault encrypt_string`` would, with VAULT_PASSWORD."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    data = plain.encode() if isinstance(plain, str) else plain
    return VaultLib([("default", VaultSecret(VAULT_PASSWORD.encode()))]).encrypt(data).decode()


def in_root(root: Path, *argv: str, check: bool = True,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command inside a root (as the agent or a person on the box would)."""
    proc = subprocess.run(["chroot", str(root), *argv], capture_output=True, text=True,
                          input=stdin, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} in {root} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def agent_report(root: Path) -> dict[str, Any]:
    out = in_root(root, "python3", "/usr/local/bin/hearth-agent", "--once", "--print").stdout
    return json.loads(out)


def _absolute(name: str, zone: str) -> str:
    if name.endswith("."):
        return name.lower()
    if name == "@":
        return zone + "."
    return f"{name}.{zone}.".lower()


def expected_records(zone: Any) -> set[tuple[str, str, int, str]]:
    out = set()
    for r in zone.records:
        data = record_data(r)
        if r.type in {"CNAME", "PTR"}:
            data = _absolute(r.target, zone.name)
        elif r.type == "MX":
            data = f"{r.priority} {_absolute(r.exchange, zone.name)}"
        elif r.type == "SRV":
            data = f"{r.priority} {r.weight} {r.port} {_absolute(r.target, zone.name)}"
        out.add((r.name, r.type, r.ttl or zone.ttl, data))
    return out


def mismatches(desired: DesiredAppliance, observed: dict[str, Any]) -> list[str]:
    """Differences between desired state and the agent's observed state (empty = match)."""
    problems: list[str] = []

    def check(what: str, want: Any, got: Any) -> None:
        if want != got:
            problems.append(f"{what}: desired {want!r}, observed {got!r}")

    users = {u["name"]: u for u in observed["users"]["users"]}
    present = [u for u in desired.users.users if u.state == "present"]
    check("user names", sorted(u.name for u in present), sorted(users))
    for u in present:
        got = users.get(u.name)
        if got is None:
            continue
        if u.uid is not None:
            check(f"{u.name}.uid", u.uid, got["uid"])
        check(f"{u.name}.full_name", u.full_name, got["full_name"])
        check(f"{u.name}.groups", sorted(set(u.groups)), got["groups"])
        check(f"{u.name}.shell", u.shell, got["shell"])
        check(f"{u.name}.ssh_keys", list(u.ssh_keys), got["ssh_keys"])
        check(f"{u.name}.has_password", u.password is not None, got["has_password"])
    groups = {g["name"]: g["gid"] for g in observed["users"]["groups"]}
    check("group names", sorted(g.name for g in desired.users.groups), sorted(groups))
    for g in desired.users.groups:
        if g.gid is not None and g.name in groups:
            check(f"group {g.name}.gid", g.gid, groups[g.name])

    if desired.samba is not None:
        shares = {s["name"]: s for s in observed["samba"]["shares"]}
        check("share names", sorted(s.name for s in desired.samba.shares), sorted(shares))
        for s in desired.samba.shares:
            got = shares.get(s.name)
            if got is None:
                continue
            for key in ("path", "comment", "read_only", "browseable", "guest_ok"):
                check(f"share {s.name}.{key}", getattr(s, key), got[key])
            check(f"share {s.name}.valid_users", sorted(s.valid_users), sorted(got["valid_users"]))
            check(f"share {s.name}.valid_groups", sorted(s.valid_groups),
                  sorted(got["valid_groups"]))
            check(f"share {s.name}.path_exists", True, got["path_exists"])
        check("workgroup", desired.samba.workgroup, observed["samba"]["workgroup"])

    if desired.dns is not None:
        zones = {z["name"]: z for z in observed["dns"]["zones"]}
        check("zone names", sorted(z.name for z in desired.dns.zones), sorted(zones))
        for z in desired.dns.zones:
            got = zones.get(z.name)
            if got is None:
                continue
            check(f"zone {z.name}.valid", True, got["valid"])
            observed_records = {(r["name"], r["type"], r["ttl"], r["data"])
                                for r in got["records"] if r["type"] not in {"SOA", "NS"}}
            check(f"zone {z.name} records", sorted(expected_records(z)), sorted(observed_records))
        check("forwarders", [str(f) for f in desired.dns.forwarders], observed["dns"]["forwarders"])

    if desired.mail is not None:
        mail = observed["mail"]
        check("mail domains", sorted(desired.mail.domains), sorted(mail["domains"]))
        check("mailboxes", sorted((m.address.lower(), m.user) for m in desired.mail.mailboxes),
              sorted((m["address"], m["user"]) for m in mail["mailboxes"]))
        check("aliases",
              sorted((a.address.lower(), tuple(d.lower() for d in a.destinations))
                     for a in desired.mail.aliases),
              sorted((a["address"], tuple(a["destinations"])) for a in mail["aliases"]))
        check("relay_host", desired.mail.relay_host, mail["relay_host"])
        check("message_size_limit", desired.mail.message_size_limit, mail["message_size_limit"])

    if desired.pki is not None and desired.ca is not None:
        pki = observed["pki"]
        check("ca common name", desired.ca.common_name, pki["ca_common_name"])
        certs = {c["name"]: c for c in pki["certificates"]}
        check("certificate names", sorted(c.name for c in desired.pki.certificates), sorted(certs))
        for c in desired.pki.certificates:
            got = certs.get(c.name)
            if got is None:
                continue
            check(f"cert {c.name}.common_name", c.common_name, got["common_name"])
            check(f"cert {c.name}.sans", sorted({c.common_name, *c.sans}), sorted(got["sans"]))
            check(f"cert {c.name}.key_type", c.key_type, got["key_type"])
            check(f"cert {c.name}.chains_to_ca", True, got["chains_to_ca"])
            check(f"cert {c.name}.consumers", sorted(c.consumers), got["consumers"])
    return problems
