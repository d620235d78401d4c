"""From the desired state of one appliance to the extravars of one Ansible run.

This module is pure: ``appliance_vars`` takes a ``schemas.config.DesiredAppliance``
(plus what Hearth managed on the appliance after its last successful run, and
the decrypted secrets) and returns a plain dict; ``build_extravars`` puts the
appliances of one run under the one key the playbooks read,
``{"hearth": {"appliances": {<name>: {...}}}}``. Every
value the roles read is in it; the roles template nothing else. What the roles
receive is already shaped for them (zone records in presentation form, the
users who need Samba accounts, what to remove), so the playbooks stay thin.

Three rules hold here rather than in the playbooks:

* **Only remove what Hearth put there.** ``ManagedInventory`` is the record of
  what Hearth manages on an appliance; removals are "previous minus desired",
  and happen only when the tenant's prune policy is on. With prune off an
  orphan (a share deleted from YAML, say) is *kept as it was* and listed under
  ``hearth.orphans``; it stays in the inventory so a later prune removes it.
  Users and groups set to ``state: absent`` are removed either way: that is an
  explicit order, not a prune.
* **Values are data.** The dict holds only str, int, bool, None, lists and
  dicts with keys of our own choosing; the workspace writes every string with
  YAML's ``!unsafe`` tag (see ``workspace.py``), because ansible-core 2.19 treats
  an ``-e @file`` extravars file as *trusted* template text. Any key starting
  with ``ansible_`` anywhere in the result is refused (``InvalidInputError``).
* **Secrets stay out of the data.** Password hashes, the NT hashes of Samba
  passwords (the passwords themselves never leave the engine) and the agent
  token go under ``secrets`` of each appliance; the module parameters that read
  them are ``no_log``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from Crypto.Hash import MD4

from engine.dnsdata import record_data
from engine.errors import InvalidInputError
from schemas.accounts import samba_account_names
from schemas.config import DesiredAppliance, Share, Zone

NAMESPACE = "hearth"
ANSIBLE_PREFIX = "ansible_"
TLS_DIR = "/etc/hearth/tls"
SAMBA_PASSWORD_MAX_BYTES = 254
"""Samba's ``pdbedit -t`` and ``smbpasswd -s`` read a password from stdin with ``fgets`` into
a 256-byte buffer: 254 bytes of UTF-8 and the newline. A longer one fails on the box with
"Mismatch - password unchanged" (measured on the appliance image), so it is refused here."""


@dataclass(frozen=True)
class ManagedInventory:
    """What Hearth manages on one appliance, recorded after each successful run.

    Shares keep their whole definition so that, with prune off, an orphan
    share is rendered exactly as it was; every other kind needs only names.
    """

    users: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    samba_accounts: list[str] = field(default_factory=list)
    shares: list[dict[str, Any]] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    mail_addresses: list[dict[str, Any]] = field(default_factory=list)
    """Mailboxes ``{address, user}`` and aliases ``{address, destinations}``."""
    certificates: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ManagedInventory:
        if not data:
            return cls()
        known = {k: list(v) for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class Secrets:
    """Decrypted values for one run; never part of the plan or the logs."""

    password_hashes: dict[str, str] = field(default_factory=dict)
    """crypt(3) hashes by user name (the decrypted ``User.password`` vault values)."""
    samba_passwords: dict[str, str] = field(default_factory=dict)
    """Plain SMB passwords by user name (the decrypted ``User.samba_password`` vault values)."""
    agent_token: str | None = None
    """The appliance's API token; None keeps the token file already on the box."""


# --------------------------------------------------------------------------- #
# Vault
# --------------------------------------------------------------------------- #


def decrypt_vault_value(value: str, password: str) -> str:
    """Decrypt one ``ansible-vault encrypt_string`` value (``$ANSIBLE_VAULT;1.1;AES256...``)."""
    # ansible is slow to import; only vault values need it
    from ansible.parsing.vault import AnsibleVaultError, VaultLib, VaultSecret

    vault = VaultLib([("default", VaultSecret(password.encode()))])
    try:
        plain = vault.decrypt(value.strip().encode())
    except AnsibleVaultError as exc:
        raise InvalidInputError(f"cannot decrypt a vault value: {exc}") from None
    try:
        return plain.decode().strip()
    except UnicodeDecodeError:
        raise InvalidInputError("a vault value decrypts to bytes that are not UTF-8 text") from None


def password_hashes(desired: DesiredAppliance, decrypt: Callable[[str], str]) -> dict[str, str]:
    """User name -> crypt hash for every present user with a vault password."""
    out = {}
    for user in desired.users.users:
        if user.state == "present" and user.password:
            hashed = decrypt(user.password)
            if not hashed.startswith("$") or ":" in hashed or "\n" in hashed:
                raise InvalidInputError(
                    f"user {user.name!r}: the vault value must hold a crypt(3) hash such as "
                    "'mkpasswd -m sha-512' prints"
                )
            out[user.name] = hashed
    return out


def samba_passwords(desired: DesiredAppliance, decrypt: Callable[[str], str]) -> dict[str, str]:
    """User name -> plain SMB password for every user who needs a Samba account on this
    appliance (``samba_account_names``) and has a vault ``samba_password``.

    The value is refused, naming the user and never the value, when Samba's tools could not
    take it on stdin as it is: empty, with a line break or NUL, or over
    ``SAMBA_PASSWORD_MAX_BYTES``.
    """
    if desired.samba is None:
        return {}
    by_name = {u.name: u for u in desired.users.users}
    out = {}
    for name in samba_account_names(desired):
        secret = by_name[name].samba_password
        if secret is None:
            continue
        password = decrypt(secret)
        problem = _samba_password_problem(password)
        if problem:
            raise InvalidInputError(f"user {name!r}: the samba_password vault value {problem}")
        out[name] = password
    return out


def _samba_password_problem(password: str) -> str | None:
    if not password:
        return "is empty"
    if any(char in password for char in "\n\r\0"):
        return "holds a line break or NUL"
    if len(password.encode()) > SAMBA_PASSWORD_MAX_BYTES:
        return f"is longer than Samba takes ({SAMBA_PASSWORD_MAX_BYTES} bytes of UTF-8)"
    return None


def nt_hash(password: str) -> str:
    """Samba's NT hash of a password: MD4 of its UTF-16LE form, in lower-case hex.

    Computed here, not on the box: hashlib has no MD4 under OpenSSL 3, so the module
    (stdlib only) compares the hash it is given with what ``pdbedit -L -w`` lists.
    """
    return MD4.new(password.encode("utf-16-le")).hexdigest()  # noqa: S303 - the NT hash is MD4


# --------------------------------------------------------------------------- #
# Domains
# --------------------------------------------------------------------------- #


def _users(desired: DesiredAppliance, previous: ManagedInventory, prune: bool,
           orphans: dict[str, list[Any]]) -> dict[str, Any]:
    present = [u for u in desired.users.users if u.state == "present"]
    absent = {u.name for u in desired.users.users if u.state == "absent"}
    wanted = {u.name for u in present}
    gone = [n for n in previous.users if n not in wanted and n not in absent]
    remove_users = sorted(absent | (set(gone) if prune else set()))
    if not prune and gone:
        orphans["users"] = sorted(gone)
    wanted_groups = {g.name for g in desired.users.groups}
    gone_groups = [g for g in previous.groups if g not in wanted_groups]
    if not prune and gone_groups:
        orphans["groups"] = sorted(gone_groups)
    return {
        "groups": [{"name": g.name, "gid": g.gid} for g in desired.users.groups],
        "users": [
            {
                "name": u.name,
                "uid": u.uid,
                "full_name": u.full_name,
                "groups": sorted(set(u.groups)),
                "shell": u.shell,
                "ssh_keys": list(u.ssh_keys),
                "password": u.password is not None,
            }
            for u in present
        ],
        "remove_users": remove_users,
        "remove_groups": sorted(gone_groups) if prune else [],
    }


def _zone(zone: Zone, hostname: str) -> dict[str, Any]:
    # The appliance is the zone's name server. A name inside the zone needs an
    # address record there (named-checkzone insists); without one, the NS is
    # an out-of-zone name that needs no glue.
    ns = f"{hostname}."
    if hostname == zone.name or hostname.endswith("." + zone.name):
        relative = "@" if hostname == zone.name else hostname[: -len(zone.name) - 1]
        if not any(r.name == relative and r.type in {"A", "AAAA"} for r in zone.records):
            ns = "localhost."
    return {
        "name": zone.name,
        "ttl": zone.ttl,
        "ns": ns,
        "hostmaster": f"hostmaster.{zone.name}.",
        "records": [
            {"name": r.name, "ttl": r.ttl, "type": r.type, "data": record_data(r)}
            for r in zone.records
        ],
    }


def _dns(desired: DesiredAppliance, previous: ManagedInventory, prune: bool,
         orphans: dict[str, list[Any]]) -> dict[str, Any] | None:
    if desired.dns is None:
        gone = list(previous.zones)
        zones: list[dict[str, Any]] = []
        forwarders: list[str] = []
    else:
        zones = [_zone(z, desired.hostname) for z in desired.dns.zones]
        forwarders = [str(f) for f in desired.dns.forwarders]
        wanted = {z.name for z in desired.dns.zones}
        gone = [z for z in previous.zones if z not in wanted]
    if not prune and gone:
        orphans["zones"] = sorted(gone)
    if desired.dns is None and not (prune and gone):
        return None
    return {
        "zones": zones,
        "forwarders": forwarders,
        "keep_zones": [] if prune else sorted(gone),
        "remove_zones": sorted(gone) if prune else [],
    }


def _share(share: Share | dict[str, Any]) -> dict[str, Any]:
    data = share.model_dump(mode="json") if isinstance(share, Share) else dict(share)
    return {
        "name": data["name"],
        "path": data["path"],
        "comment": data.get("comment", ""),
        "read_only": bool(data.get("read_only", False)),
        "browseable": bool(data.get("browseable", True)),
        "valid_users": list(data.get("valid_users", [])),
        "valid_groups": list(data.get("valid_groups", [])),
        "guest_ok": bool(data.get("guest_ok", False)),
    }


def share_directory(share: dict[str, Any]) -> dict[str, Any]:
    """Owner and mode of a share's directory: group-owned and setgid when the share names
    groups (members write, new files keep the group); world-writable with the sticky bit
    when any account may write; read-only shares are 0755."""
    group = share["valid_groups"][0] if share["valid_groups"] else "root"
    if share["read_only"]:
        mode = "2775" if share["valid_groups"] else "0755"
    elif share["valid_groups"]:
        mode = "2770"
    else:
        mode = "1777"
    return {"path": share["path"], "owner": "root", "group": group, "mode": mode}


def _samba(desired: DesiredAppliance, previous: ManagedInventory, prune: bool,
           orphans: dict[str, list[Any]], certificates: dict[str, dict[str, Any]]
           ) -> dict[str, Any] | None:
    if desired.samba is None:
        return None
    shares = [_share(s) for s in desired.samba.shares]
    wanted = {s["name"] for s in shares}
    gone = [s for s in previous.shares if s["name"] not in wanted]
    if gone and not prune:
        orphans["shares"] = sorted(s["name"] for s in gone)
        shares += [_share(s) for s in gone]
    accounts = samba_account_names(desired)
    gone_accounts = sorted(set(previous.samba_accounts) - set(accounts))
    if gone_accounts and not prune:
        orphans["samba_accounts"] = gone_accounts
    absent = {u.name for u in desired.users.users if u.state == "absent"}
    cert = next((c for c in certificates.values() if "samba" in c["consumers"]), None)
    return {
        "workgroup": desired.samba.workgroup,
        "directories": [share_directory(s) for s in shares],
        "netbios_name": desired.hostname.split(".")[0][:15].upper(),
        "shares": shares,
        "accounts": accounts,
        # Users set to absent lose their Samba account too (the module skips
        # names passdb does not have); other removals only with prune.
        "remove_accounts": sorted(set(gone_accounts if prune else []) | absent),
        "tls": cert,
    }


def _mail(desired: DesiredAppliance, previous: ManagedInventory, prune: bool,
          orphans: dict[str, list[Any]], certificates: dict[str, dict[str, Any]]
          ) -> dict[str, Any] | None:
    if desired.mail is None:
        return None
    mail = desired.mail
    mailboxes = [{"address": m.address.lower(), "user": m.user} for m in mail.mailboxes]
    aliases = [{"address": a.address.lower(), "destinations": [d.lower() for d in a.destinations]}
               for a in mail.aliases]
    wanted = {m["address"] for m in mailboxes} | {a["address"] for a in aliases}
    gone = [m for m in previous.mail_addresses if m["address"] not in wanted]
    domains = list(mail.domains)
    if gone and not prune:
        orphans["mail_addresses"] = sorted(m["address"] for m in gone)
        for entry in gone:
            (aliases if "destinations" in entry else mailboxes).append(dict(entry))
            domain = entry["address"].rpartition("@")[2]
            if domain not in domains:
                domains.append(domain)
    cert = next((c for c in certificates.values() if "mail" in c["consumers"]), None)
    return {
        "hostname": desired.hostname,
        "domains": domains,
        "mailboxes": mailboxes,
        "aliases": aliases,
        "relay_host": mail.relay_host,
        "message_size_limit": mail.message_size_limit,
        "mailbox_size_limit": mail.mailbox_size_limit,
        "tls": cert,
    }


def _certificates(desired: DesiredAppliance) -> dict[str, dict[str, Any]]:
    if desired.pki is None:
        return {}
    out = {}
    for cert in desired.pki.certificates:
        sans = []
        for san in [cert.common_name, *cert.sans]:
            try:
                ipaddress.ip_address(san)
                entry = f"IP:{san}"
            except ValueError:
                entry = f"DNS:{san}"
            if entry not in sans:
                sans.append(entry)
        out[cert.name] = {
            "name": cert.name,
            "common_name": cert.common_name,
            "sans": sans,
            "key_type": cert.key_type,
            "validity_days": cert.validity_days,
            "renew_before_days": cert.renew_before_days,
            "consumers": list(cert.consumers),
            "cert_path": f"{TLS_DIR}/{cert.name}.crt",
            "key_path": f"{TLS_DIR}/{cert.name}.key",
            "chain_path": f"{TLS_DIR}/{cert.name}.chain.crt",
        }
    return out


def _pki(desired: DesiredAppliance, previous: ManagedInventory, prune: bool,
         orphans: dict[str, list[Any]], certificates: dict[str, dict[str, Any]]
         ) -> dict[str, Any] | None:
    if desired.pki is None or desired.ca is None:
        return None
    gone = sorted(set(previous.certificates) - set(certificates))
    if gone and not prune:
        orphans["certificates"] = gone
    return {
        "ca": {
            "common_name": desired.ca.common_name,
            "key_type": desired.ca.key_type,
            "validity_days": desired.ca.validity_days,
        },
        "ca_cert_path": f"{TLS_DIR}/ca.crt",
        "certificates": list(certificates.values()),
        "remove": [
            {"name": n, "paths": [f"{TLS_DIR}/{n}.crt", f"{TLS_DIR}/{n}.key",
                                  f"{TLS_DIR}/{n}.chain.crt"]}
            for n in (gone if prune else [])
        ],
    }


# --------------------------------------------------------------------------- #
# The whole
# --------------------------------------------------------------------------- #


def managed_inventory(desired: DesiredAppliance, previous: ManagedInventory | None = None,
                      *, prune: bool | None = None) -> ManagedInventory:
    """What Hearth manages after a successful run of ``desired``.

    With prune off, orphans stay in the inventory (they are still Hearth's to
    remove later); with prune on they are gone.
    """
    previous = previous or ManagedInventory()
    prune = desired.policies.prune if prune is None else prune
    present = [u.name for u in desired.users.users if u.state == "present"]
    absent = {u.name for u in desired.users.users if u.state == "absent"}
    users = set(present)
    groups = {g.name for g in desired.users.groups}
    shares = {s.name: _share(s) for s in (desired.samba.shares if desired.samba else [])}
    zones = {z.name for z in (desired.dns.zones if desired.dns else [])}
    mail: dict[str, dict[str, Any]] = {}
    if desired.mail:
        for m in desired.mail.mailboxes:
            mail[m.address.lower()] = {"address": m.address.lower(), "user": m.user}
        for a in desired.mail.aliases:
            mail[a.address.lower()] = {"address": a.address.lower(),
                                       "destinations": [d.lower() for d in a.destinations]}
    accounts = set(samba_account_names(desired)) if desired.samba else set()
    certs = set(_certificates(desired)) if desired.ca else set()
    if not prune:
        users |= set(previous.users) - absent
        groups |= set(previous.groups)
        accounts |= set(previous.samba_accounts) - absent
        for share in previous.shares:
            shares.setdefault(share["name"], dict(share))
        zones |= set(previous.zones)
        for entry in previous.mail_addresses:
            mail.setdefault(entry["address"], dict(entry))
        certs |= set(previous.certificates)
    return ManagedInventory(
        users=sorted(users),
        groups=sorted(groups),
        samba_accounts=sorted(accounts),
        shares=[shares[n] for n in sorted(shares)],
        zones=sorted(zones),
        mail_addresses=[mail[a] for a in sorted(mail)],
        certificates=sorted(certs),
    )


def appliance_vars(
    desired: DesiredAppliance,
    *,
    previous: ManagedInventory | None = None,
    prune: bool | None = None,
    secrets: Secrets | None = None,
    api_url: str | None = None,
    revision: str | None = None,
    run: int | None = None,
    agent_interval_seconds: int = 60,
) -> dict[str, Any]:
    """What the roles read for one appliance (``hearth.appliances[<name>]``).

    ``prune`` defaults to the tenant's policy; ``previous`` is the inventory
    recorded after the last successful run (empty for a new appliance).
    """
    previous = previous or ManagedInventory()
    prune = desired.policies.prune if prune is None else prune
    secrets = secrets or Secrets()
    orphans: dict[str, list[Any]] = {}
    certificates = _certificates(desired) if desired.ca else {}
    return {
        "tenant": desired.tenant,
        "name": desired.name,
        "hostname": desired.hostname,
        "site": desired.site,
        "revision": revision,
        "run": run,
        "prune": prune,
        "domains": desired.domains(),
        "users": _users(desired, previous, prune, orphans),
        "pki": _pki(desired, previous, prune, orphans, certificates),
        "dns": _dns(desired, previous, prune, orphans),
        "samba": _samba(desired, previous, prune, orphans, certificates),
        "mail": _mail(desired, previous, prune, orphans, certificates),
        "agent": {"api_url": api_url, "interval_seconds": agent_interval_seconds},
        "managed": {
            "previous": previous.as_dict(),
            "current": managed_inventory(desired, previous, prune=prune).as_dict(),
        },
        "orphans": orphans,
        "secrets": {
            "password_hashes": [{"name": k, "hash": v}
                                for k, v in sorted(secrets.password_hashes.items())],
            # Only the NT hash: the box never needs the password in clear.
            "samba_accounts": [{"name": k, "nt_hash": nt_hash(v)}
                               for k, v in sorted(secrets.samba_passwords.items())],
            "agent_token": secrets.agent_token,
        },
    }


def build_extravars(appliances: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The extravars of one run: ``{"hearth": {"appliances": {<name>: appliance_vars}}}``.

    A run converges appliances of one tenant (``InvalidInputError`` otherwise).

    Extravars are global to a run while every appliance has its own desired
    state, so the roles read ``hearth.appliances[inventory_hostname]`` (the
    inventory names hosts by appliance name).
    """
    by_name: dict[str, dict[str, Any]] = {}
    appliances = list(appliances)
    tenants = {item["tenant"] for item in appliances}
    if len(tenants) > 1:
        # The PKI role creates a tenant's CA once per run (run_once); runs are per tenant.
        raise InvalidInputError(f"one run converges one tenant; got {sorted(tenants)}")
    for item in appliances:
        if item["name"] in by_name:
            raise InvalidInputError(f"appliance {item['name']!r} appears twice in one run")
        by_name[item["name"]] = item
    extravars = {NAMESPACE: {"appliances": by_name}}
    reject_ansible_keys(extravars)
    return extravars


def _walk_keys(value: Any, path: str) -> Iterable[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str):
                raise InvalidInputError(f"extravars key {where!r} is not a string")
            yield where
            yield from _walk_keys(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk_keys(item, f"{path}[{index}]")


def reject_ansible_keys(extravars: dict[str, Any]) -> None:
    """Refuse extravars with an ``ansible_*`` key anywhere (they would steer Ansible itself:
    connection, interpreter, become...) or with more than the one namespaced top-level key."""
    if set(extravars) - {NAMESPACE}:
        extra = ", ".join(sorted(map(str, set(extravars) - {NAMESPACE})))
        raise InvalidInputError(f"extravars may only hold {NAMESPACE!r}; found {extra}")
    bad = [
        where for where in _walk_keys(extravars, "")
        if where.rpartition(".")[2].split("[")[0].lower().startswith(ANSIBLE_PREFIX)
    ]
    if bad:
        raise InvalidInputError("tenant data must not contain ansible_* keys: " + ", ".join(bad))
