"""Make what the YAML says and what the agent reports comparable: the canonical form.

The planner never compares pydantic models. Both sides are first turned into a
``CanonicalDomain`` per domain (gitops-engine's ``diff.Normalizer``): objects
keyed by identity (``ObjectKey``, the same key the inventory holds), each a
tuple of field values in the fixed order of ``FIELDS``, plus domain-wide
``settings``. Two converged sides produce equal canonical values, so an
appliance in sync yields an empty plan. The rules:

- identity: users, groups, shares, Samba accounts, certificates by name; zones by name
  (lower case, no trailing dot); records by ``(absolute name, type, data)``;
  mail domains, mailboxes and aliases by lower-cased address;
- lists that are sets are sorted tuples (groups, valid users, SANs with the
  common name included, alias destinations); SSH keys lose their comment;
  GECOS loses its ``,room,phone`` tail; key types lose punctuation;
- DNS: desired typed records are rendered in presentation form as a zone file
  (and so the agent's ``ObservedRecord``) holds them: names and targets become
  absolute lower-case FQDNs ending in '.', MX is ``"10 mail.example.com."``,
  SRV ``"0 5 5060 sip.example.com."``, TXT the concatenated bytes in the one
  quoting of ``engine.dnsdata`` (the executor's too), addresses in canonical
  (inet_ntop) form. SOA and NS records are the role's (serials change on every write) and are ignored;
- volatile observed fields are dropped (zone serial, certificate not_before,
  issuer and fingerprints, CA fingerprint); certificate ``not_after`` is kept
  aside in ``deadlines`` for the renewal check, never compared;
- a field Hearth does not set (a user's uid when the YAML gives none, a
  password when the YAML gives none, a record ttl the agent did not report) is
  ``UNSET``, which compares equal to any value, so it never shows as drift; so
  is a user's ``ssh_keys`` the agent could not read safely (reported as null);
- a domain whose probe failed on the box (named in ``observed.unknown``) is
  ``UNKNOWN``: no evidence, which the diff plans nothing for.

Everything here is pure and cheap: ``normalize_desired`` depends only on the
desired appliance, so callers may compute it once per (appliance, revision)
and pass it to ``build_plan``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine.dnsdata import canonical_txt, quote_txt
from schemas.accounts import samba_account_names
from schemas.config import (
    Certificate,
    DesiredAppliance,
    DnsSpec,
    MailSpec,
    PkiSpec,
    SambaSpec,
    Share,
    UsersState,
)
from schemas.heartbeat import (
    ObservedDns,
    ObservedMail,
    ObservedPki,
    ObservedSamba,
    ObservedShare,
    ObservedState,
    ObservedUsers,
)
from schemas.plan import DOMAIN_ORDER, ObjectKey


class _Unset:
    """A value Hearth does not manage: equal to anything, shown as absent."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()

FIELDS: dict[str, tuple[str, ...]] = {
    "users": ("full_name", "groups", "shell", "ssh_keys", "uid", "has_password"),
    "groups": ("gid",),
    "shares": ("path", "comment", "read_only", "browseable", "valid_users", "valid_groups",
               "guest_ok", "path_exists"),
    "accounts": (),
    "zones": ("valid",),
    "records": ("ttl",),
    "certificates": ("common_name", "sans", "key_type", "chains_to_ca", "consumers"),
    "domains": (),
    "mailboxes": ("user",),
    "aliases": ("destinations",),
}
"""Field names of each object kind; the kind is the second-last element of its key."""

IGNORED_RECORD_TYPES = frozenset({"SOA", "NS"})

_CANONICAL_IPV4 = re.compile(r"^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}"
                             r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$")


@dataclass(frozen=True, slots=True)
class CanonicalDomain:
    """One domain of one side, ready to compare.

    ``running`` is False when the agent reported nothing for the domain (its
    service is not installed). ``absent`` holds keys the YAML wants gone
    (users with ``state: absent``). ``deadlines`` holds, per certificate key,
    ``not_after`` (observed side) or ``renew_before`` (desired side).
    """

    running: bool = True
    known: bool = True
    """False when the agent's probe for the domain failed: no evidence, so nothing to
    plan (neither "not running" nor missing objects nor extras)."""
    settings: dict[str, Any] = field(default_factory=dict)
    objects: dict[ObjectKey, tuple[Any, ...]] = field(default_factory=dict)
    absent: frozenset[ObjectKey] = frozenset()
    deadlines: dict[ObjectKey, Any] = field(default_factory=dict)
    implied: dict[ObjectKey, tuple[Any, ...]] = field(default_factory=dict)
    """Observed objects that come with another one (a user's private group): kept out of
    ``objects``, so never extras, but they satisfy a desired object of the same key."""

    def same_content(self, other: CanonicalDomain) -> bool:
        """Equal settings and objects: nothing to diff (the planner's fast path)."""
        return (
            self.running == other.running
            and self.objects == other.objects
            and self.settings == other.settings
        )


CanonicalState = dict[str, CanonicalDomain]
"""Domain name -> canonical domain, for the domains a side has."""

NOT_RUNNING = CanonicalDomain(running=False)
UNKNOWN = CanonicalDomain(known=False)


def kind_of(key: ObjectKey) -> str:
    return key[-2]


def as_json(key: ObjectKey, values: tuple[Any, ...]) -> dict[str, Any]:
    """A canonical object as a JSON dict for a diff item, unset fields left out."""
    return {
        name: (list(value) if isinstance(value, tuple) else value)
        for name, value in zip(FIELDS[kind_of(key)], values, strict=True)
        if value is not UNSET
    }


def json_value(value: Any) -> Any:
    if value is UNSET:
        return None
    if isinstance(value, tuple):
        return list(value)
    return value


# --------------------------------------------------------------------------- #
# Shared value rules
# --------------------------------------------------------------------------- #


def _sorted(values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, list) and len(values) < 2:
        return tuple(values)  # the common case, without building a set
    return tuple(sorted(set(values)))


def _ssh_key(value: str) -> str:
    """``type base64`` without the comment, which does not change what the key admits."""
    parts = value.split()
    return " ".join(parts[:2])


def _gecos(value: str) -> str:
    return value.split(",", 1)[0].strip() if "," in value else value.strip()


def _key_type(value: str) -> str:
    return "".join(ch for ch in value.lower() if ch.isalnum())


def _optional_text(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    return value or None


def absolute_name(name: str, zone: str) -> str:
    """``@``, a relative or an absolute name -> absolute lower-case FQDN ending in '.'."""
    name = name.strip().lower()
    if name[-1:] == ".":
        return name
    if name == "@" or name == "":
        return zone + "."
    if name == zone or name.endswith("." + zone):
        # Agents sometimes drop the final dot of an absolute name.
        return name + "."
    return f"{name}.{zone}."


def canonical_address(text: str) -> str:
    """An IPv4 or IPv6 address in its canonical text form (the C library's, both sides)."""
    if _CANONICAL_IPV4.fullmatch(text):
        return text
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    try:
        return socket.inet_ntop(family, socket.inet_pton(family, text))
    except OSError:
        return text.lower()


def presentation(zone: str, name: str, type_: str, data: str) -> tuple[str, str, str]:
    """Canonical ``(absolute name, type, data)`` of an observed record's presentation form."""
    owner = absolute_name(name, zone)
    data = data.strip()
    if type_ in ("A", "AAAA"):
        data = canonical_address(data)
    elif type_ in ("CNAME", "PTR"):
        data = absolute_name(data, zone)
    elif type_ == "MX":
        parts = data.split()
        if len(parts) == 2 and parts[0].isdigit():
            data = f"{int(parts[0])} {absolute_name(parts[1], zone)}"
    elif type_ == "SRV":
        parts = data.split()
        if len(parts) == 4 and all(p.isdigit() for p in parts[:3]):
            numbers = " ".join(str(int(p)) for p in parts[:3])
            data = f"{numbers} {absolute_name(parts[3], zone)}"
    elif type_ == "TXT":
        data = canonical_txt(data)
    return owner, type_, data


def desired_record(zone: str, record: Any) -> tuple[str, str, str]:
    """A typed desired record in the presentation form ``presentation`` gives observed ones."""
    owner = absolute_name(record.name, zone)
    type_ = record.type
    if type_ in ("A", "AAAA"):
        data = canonical_address(str(record.address))
    elif type_ in ("CNAME", "PTR"):
        data = absolute_name(record.target, zone)
    elif type_ == "MX":
        data = f"{record.priority} {absolute_name(record.exchange, zone)}"
    elif type_ == "SRV":
        target = absolute_name(record.target, zone)
        data = f"{record.priority} {record.weight} {record.port} {target}"
    elif type_ == "TXT":
        data = quote_txt(record.text)
    else:  # pragma: no cover - the schema's union is closed
        raise ValueError(f"unknown record type {type_!r}")
    return owner, type_, data


def record_key(zone: str, owner: str, type_: str, data: str) -> ObjectKey:
    return ("zones", zone, "records", f"{owner} {type_} {data}")


def _zone_name(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _san(value: str) -> str:
    """One SAN in canonical form: an IP address compressed (openssl prints IPv6 in full,
    ``2001:DB8:0:0:0:0:0:1``; YAML may say ``2001:db8::1``), a DNS name lower case."""
    value = value.strip()
    try:
        return ipaddress.ip_address(value).compressed
    except ValueError:
        return value.lower()


def _sans(common_name: str, sans: Iterable[str]) -> tuple[str, ...]:
    return _sorted([common_name.lower(), *(_san(s) for s in sans)])


# --------------------------------------------------------------------------- #
# Desired side
# --------------------------------------------------------------------------- #


def _desired_users(state: UsersState) -> CanonicalDomain:
    objects: dict[ObjectKey, tuple[Any, ...]] = {}
    absent = []
    for user in state.users:
        key = ("users", user.name)
        if user.state == "absent":
            absent.append(key)
            continue
        objects[key] = (
            user.full_name.strip(),
            _sorted(user.groups),
            user.shell,
            _sorted([_ssh_key(k) for k in user.ssh_keys]),
            UNSET if user.uid is None else user.uid,
            True if user.password is not None else UNSET,
        )
    for group in state.groups:
        objects[("groups", group.name)] = (UNSET if group.gid is None else group.gid,)
    return CanonicalDomain(objects=objects, absent=frozenset(absent))


def _desired_dns(dns: DnsSpec) -> CanonicalDomain:
    objects: dict[ObjectKey, tuple[Any, ...]] = {}
    for zone in dns.zones:
        zone_name = _zone_name(zone.name)
        objects[("zones", zone_name)] = (True,)
        for record in zone.records:
            owner, type_, data = desired_record(zone_name, record)
            ttl = record.ttl if record.ttl is not None else zone.ttl
            objects[record_key(zone_name, owner, type_, data)] = (ttl,)
    forwarders = _sorted(str(f) for f in dns.forwarders)
    return CanonicalDomain(settings={"forwarders": forwarders}, objects=objects)


def _share(share: Share | ObservedShare, path: str, path_exists: bool) -> tuple[Any, ...]:
    """One share, canonical on either side (the path normalised by the caller)."""
    return (path, share.comment.strip(), share.read_only, share.browseable,
            _sorted(share.valid_users), _sorted(share.valid_groups), share.guest_ok, path_exists)


def _desired_samba(desired: DesiredAppliance, samba: SambaSpec) -> CanonicalDomain:
    objects: dict[ObjectKey, tuple[Any, ...]] = {
        ("shares", share.name): _share(share, share.path, True) for share in samba.shares}
    # The passdb accounts the executor keeps (``samba_account_names``); absent users lose
    # theirs whatever the prune policy, as the samba role removes them.
    for name in samba_account_names(desired):
        objects[("accounts", name)] = ()
    absent = frozenset(("accounts", u.name) for u in desired.users.users if u.state == "absent")
    return CanonicalDomain(settings={"workgroup": samba.workgroup.upper()}, objects=objects,
                           absent=absent)


def _mail(mail: MailSpec | ObservedMail) -> CanonicalDomain:
    """Both sides of the mail domain have the same shape; one canonical form serves both."""
    objects: dict[ObjectKey, tuple[Any, ...]] = {}
    for domain in mail.domains:
        objects[("domains", domain.strip().rstrip(".").lower())] = ()
    for box in mail.mailboxes:
        objects[("mailboxes", box.address.lower())] = (box.user,)
    for alias in mail.aliases:
        objects[("aliases", alias.address.lower())] = (
            _sorted(d.lower() for d in alias.destinations),
        )
    settings = {
        "relay_host": _optional_text(mail.relay_host),
        "message_size_limit": mail.message_size_limit,
        "mailbox_size_limit": mail.mailbox_size_limit,
    }
    return CanonicalDomain(settings=settings, objects=objects)


def _certificate(cert: Certificate) -> tuple[Any, ...]:
    return (
        cert.common_name.lower(),
        _sans(cert.common_name, cert.sans),
        cert.key_type,
        True,
        _sorted(cert.consumers),
    )


def _desired_pki(pki: PkiSpec, ca_common_name: str | None) -> CanonicalDomain:
    objects = {("certificates", cert.name): _certificate(cert) for cert in pki.certificates}
    deadlines = {
        ("certificates", cert.name): timedelta(days=cert.renew_before_days)
        for cert in pki.certificates
    }
    settings = {"ca_common_name": UNSET if ca_common_name is None else ca_common_name}
    return CanonicalDomain(settings=settings, objects=objects, deadlines=deadlines)


def normalize_desired(desired: DesiredAppliance) -> CanonicalState:
    """The canonical form of every domain the appliance should run (None domains left out)."""
    state: CanonicalState = {"users": _desired_users(desired.users)}
    if desired.pki is not None:
        state["pki"] = _desired_pki(
            desired.pki, desired.ca.common_name if desired.ca is not None else None
        )
    if desired.dns is not None:
        state["dns"] = _desired_dns(desired.dns)
    if desired.samba is not None:
        state["samba"] = _desired_samba(desired, desired.samba)
    if desired.mail is not None:
        state["mail"] = _mail(desired.mail)
    return state


# --------------------------------------------------------------------------- #
# Observed side
# --------------------------------------------------------------------------- #


def _observed_users(users: ObservedUsers) -> CanonicalDomain:
    objects: dict[ObjectKey, tuple[Any, ...]] = {}
    user_names = set()
    for user in users.users:
        user_names.add(user.name)
        keys = user.ssh_keys
        objects[("users", user.name)] = (
            _gecos(user.full_name),
            _sorted(user.groups),
            user.shell,
            # None: the agent could not read them safely, no evidence either way
            UNSET if keys is None else _sorted([_ssh_key(k) for k in keys]) if keys else (),
            UNSET if user.uid is None else user.uid,
            user.has_password,
        )
    # A user's private group (same name) comes with the account, not from groups.yaml.
    private: dict[ObjectKey, tuple[Any, ...]] = {}
    for group in users.groups:
        target = private if group.name in user_names else objects
        target[("groups", group.name)] = (UNSET if group.gid is None else group.gid,)
    return CanonicalDomain(objects=objects, implied=private)


def _observed_dns(dns: ObservedDns) -> CanonicalDomain:
    objects: dict[ObjectKey, tuple[Any, ...]] = {}
    for zone in dns.zones:
        zone_name = _zone_name(zone.name)
        objects[("zones", zone_name)] = (zone.valid,)
        for record in zone.records:
            if record.type in IGNORED_RECORD_TYPES:
                continue
            owner, type_, data = presentation(zone_name, record.name, record.type, record.data)
            ttl = UNSET if record.ttl is None else record.ttl
            objects[record_key(zone_name, owner, type_, data)] = (ttl,)
    forwarders = _sorted(f.strip() for f in dns.forwarders)
    return CanonicalDomain(settings={"forwarders": forwarders}, objects=objects)


def _observed_samba(samba: ObservedSamba) -> CanonicalDomain:
    objects: dict[ObjectKey, tuple[Any, ...]] = {
        ("shares", share.name): _share(share, share.path.rstrip("/") or "/", share.path_exists)
        for share in samba.shares}
    for name in samba.samba_users:
        objects[("accounts", name)] = ()
    return CanonicalDomain(settings={"workgroup": samba.workgroup.upper()}, objects=objects)


def _observed_pki(pki: ObservedPki) -> CanonicalDomain:
    objects: dict[ObjectKey, tuple[Any, ...]] = {}
    deadlines: dict[ObjectKey, Any] = {}
    for cert in pki.certificates:
        key = ("certificates", cert.name)
        objects[key] = (
            cert.common_name.lower(),
            _sans(cert.common_name, cert.sans),
            _key_type(cert.key_type),
            cert.chains_to_ca,
            _sorted(cert.consumers),
        )
        if cert.not_after is not None:
            deadlines[key] = cert.not_after
    settings = {"ca_common_name": pki.ca_common_name}
    return CanonicalDomain(settings=settings, objects=objects, deadlines=deadlines)


_OBSERVERS = {
    "users": _observed_users,
    "pki": _observed_pki,
    "dns": _observed_dns,
    "samba": _observed_samba,
    "mail": _mail,
}


def normalize_observed(observed: ObservedState | None) -> CanonicalState:
    """The canonical form of what the box runs; a domain it does not run is ``NOT_RUNNING``,
    one whose probe failed (``observed.unknown``) is ``UNKNOWN``."""
    state: CanonicalState = {}
    for domain in DOMAIN_ORDER:
        value = getattr(observed, domain) if observed is not None else None
        if observed is not None and domain in observed.unknown:
            state[domain] = UNKNOWN
        else:
            state[domain] = NOT_RUNNING if value is None else _OBSERVERS[domain](value)
    return state


def renewal_due(not_after: datetime | None, renew_before: timedelta, *, now: datetime) -> bool:
    """A certificate whose expiry falls inside its renewal window (or has passed)."""
    return not_after is not None and not_after - renew_before <= now
