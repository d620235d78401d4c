"""The config-repo documents of a tenant: Tenant, Users, Groups and Appliance.

A tenant repository holds YAML documents, each ``apiVersion: hearth/v1``,
``kind``, ``metadata.name`` and ``spec``. Where each kind lives is fixed
(``LAYOUT``); the reader rejects any other path. Every model here is strict:
unknown fields are errors, so a typo never silently does nothing.

This module has no I/O. ``check_references`` runs the cross-document checks
(referenced users and groups exist, names are unique, certificate consumers
exist) and returns findings as ``(file, path, message)`` so the reader can
point each at a line and column. ``resolve_appliance`` turns the documents
into the one value the rest of Hearth works from: the desired state of one
appliance (``DesiredAppliance``), with tenant-wide users and groups picked by
name or group.

Every string that can reach a file on an appliance (smb.conf, named.conf, zone
files, main.cf, the virtual map, dovecot.conf, /etc/passwd, authorized_keys) is
``ConfigText`` or a type ending in ``NO_CONTROL``: no control character, so a value
can never start a line of its own; the per-format rules (Samba's ``%``, reserved
share names, IPv6 zone indexes, mail local parts) sit with the field they guard.
``ansible/README.md`` has the table; the templates check the same again.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)

from schemas.names import OBJECT_NAME, OBJECT_NAME_PATTERN
from schemas.plan import DOMAIN_ORDER

API_VERSION = "hearth/v1"

SHARE_ROOTS: tuple[str, ...] = ("/srv",)
"""Directories under which Samba share paths may live."""

ALLOWED_SHELLS: tuple[str, ...] = (
    "/bin/bash",
    "/bin/sh",
    "/usr/bin/bash",
    "/usr/bin/zsh",
    "/usr/sbin/nologin",
    "/bin/false",
)

VAULT_PREFIX = "$ANSIBLE_VAULT;"


# --------------------------------------------------------------------------- #
# Checked scalar types
# --------------------------------------------------------------------------- #

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_SERVICE_LABEL = re.compile(r"^_[A-Za-z0-9][A-Za-z0-9-]{0,61}$")
_POSIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_LOCAL_PART = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_SHARE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,79}$")
_NETBIOS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,14}$")
_SSH_KEY = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com"
    r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n\r]{0,200})?$"
)
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
"""Unicode category Cc (C0, DEL, C1 with NEL U+0085), the line and paragraph separators
U+2028/U+2029 (Zl, Zp) and lone surrogates (Cs: libyaml refuses them, JSON input may not)."""
_CONTROL_NAMES = {"\t": "a tab", "\n": "a line feed", "\r": "a carriage return",
                  "\x0b": "a vertical tab", "\x0c": "a form feed", "\x00": "a NUL",
                  "\x85": "a next-line (NEL)", "\u2028": "a line separator",
                  "\u2029": "a paragraph separator"}
SAMBA_RESERVED_SECTIONS = frozenset({"global", "homes", "printers"})
"""Section names smb.conf gives a meaning of its own: a share so named would set defaults
for every share ([global]) or turn into the home-directory or printer service."""


def _check_domain(value: str) -> str:
    """A fully qualified domain name: RFC 1035 labels, no trailing dot, lower case."""
    name = value.rstrip(".").lower()
    if not name or len(name) > 253:
        raise ValueError(f"{value!r} is not a domain name (1 to 253 characters)")
    labels = name.split(".")
    for label in labels:
        if not _LABEL.fullmatch(label):
            raise ValueError(
                f"{value!r} is not a valid domain name: label {label!r} must be 1-63 letters, "
                "digits or hyphens, not starting or ending with a hyphen"
            )
    if len(labels) < 2:
        raise ValueError(f"{value!r} is not a fully qualified domain name (needs a dot)")
    return name


def _check_record_name(value: str) -> str:
    """A name inside a zone: '@', a relative name, or an absolute name ending in '.'."""
    if value == "@":
        return value
    name = value[:-1] if value.endswith(".") else value
    if not name or len(name) > 253:
        raise ValueError(f"{value!r} is not a record name")
    for label in name.split("."):
        if label == "*" and name.startswith("*"):
            continue
        if not (_LABEL.fullmatch(label) or _SERVICE_LABEL.fullmatch(label)):
            raise ValueError(
                f"{value!r} is not a valid record name: label {label!r} breaks RFC 1035 "
                "(letters, digits, hyphens; '_' only as a service label's first character)"
            )
    return value.lower()


def _check_posix_name(value: str) -> str:
    if not _POSIX_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid POSIX name: use 1-32 lower-case letters, digits, "
            "'_' or '-', starting with a letter or '_'"
        )
    return value


def _check_config_text(value: Any) -> Any:
    """No character that can end or bend a line of a config file (``_CONTROL``).

    Every string of a tenant's YAML that can reach a file on an appliance passes
    here (``ConfigText``): smb.conf, named.conf, zone files, main.cf, the virtual
    map, dovecot.conf, /etc/passwd and authorized_keys are all line-oriented, and
    a line break in a value would start a directive of the tenant's choosing
    (a share comment ``"x\\nroot preexec = ..."`` runs a command as root).
    It runs before any pattern so the message names the character, not a regex.
    """
    if isinstance(value, str):
        found = _CONTROL.search(value)
        if found:
            char = found.group()
            what = _CONTROL_NAMES.get(char) or f"the control character U+{ord(char):04X}"
            if "\ud800" <= char <= "\udfff":
                what = f"a lone surrogate U+{ord(char):04X}"
            raise ValueError(
                f"must not contain {what} (at character {found.start() + 1}): values end up "
                "in line-oriented config files, where only a plain space is safe"
            )
    return value


def _check_smb_value(value: str) -> str:
    """A value smb.conf keeps as written: no %-variables, no continuation, no trimmed space."""
    if "%" in value:
        raise ValueError(
            "must not contain '%': Samba expands %-variables here (%$(VAR) even reads its "
            "environment) and smb.conf has no escape for a literal '%'"
        )
    if value != value.strip(" "):
        raise ValueError("must not begin or end with a space (Samba drops it)")
    if value.endswith("\\"):
        raise ValueError(
            "must not end with a backslash: in smb.conf it joins the next line to this value"
        )
    return value


def _check_share_name(value: str) -> str:
    if value.lower() in SAMBA_RESERVED_SECTIONS:
        raise ValueError(
            f"{value!r} is a reserved smb.conf section name; choose another share name"
        )
    return value


def _check_full_name(value: str) -> str:
    if ":" in value:
        raise ValueError("must not contain ':' (it separates the fields of /etc/passwd)")
    return value


def _check_unscoped(address: ipaddress.IPv4Address | ipaddress.IPv6Address
                    ) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """No IPv6 zone index: Python accepts any text after '%' (newlines included)."""
    if getattr(address, "scope_id", None) is not None:
        raise ValueError(f"{str(address)!r}: an address with a zone index ('%...') is not "
                         "allowed here")
    return address


def _parse_ip(value: Any) -> Any:
    """One error for a bad address of either family (a union would report two)."""
    if not isinstance(value, str):
        return value
    _check_config_text(value)
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 address") from None
    return _check_unscoped(address)


def _check_ip_or_domain(value: str, *, wildcard: bool = False) -> str:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        _check_domain(value.removeprefix("*.") if wildcard else value)
        return value
    _check_unscoped(address)
    return value


def _check_san(value: str) -> str:
    return _check_ip_or_domain(value, wildcard=True)


def _check_address(value: str) -> str:
    """A mail address as the virtual map and Postfix take it: atext local part, FQDN."""
    local, at, domain = value.rpartition("@")
    if not at or not _LOCAL_PART.fullmatch(local):
        raise ValueError(f"{value!r}: local part is not a valid mail local part")
    if local.startswith("#"):
        raise ValueError(f"{value!r}: a local part starting with '#' would be a comment "
                         "in the virtual map")
    _check_domain(domain)
    return value


def _check_vault(value: str) -> str:
    if not value.startswith(VAULT_PREFIX):
        raise ValueError(
            "passwords must be ansible-vault encrypted ('$ANSIBLE_VAULT;1.1;AES256 ...', made "
            "with `ansible-vault encrypt_string`); plain-text passwords are not allowed in git"
        )
    return value


def _check_share_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"share path {value!r} must be absolute")
    if ".." in value.split("/"):
        raise ValueError(f"share path {value!r} must not contain '..'")
    normal = posixpath.normpath(value)
    if normal != value:
        raise ValueError(f"share path {value!r} is not normalised; write {normal!r}")
    if not any(normal.startswith(root + "/") for root in SHARE_ROOTS):
        roots = ", ".join(SHARE_ROOTS)
        raise ValueError(f"share path {value!r} must be under {roots} (and not the root itself)")
    return normal


def _check_ssh_key(value: str) -> str:
    if not _SSH_KEY.fullmatch(value.strip()):
        raise ValueError(
            "not an OpenSSH public key: expected 'TYPE BASE64 [comment]' with TYPE such as "
            "ssh-ed25519 or ssh-rsa"
        )
    return value.strip()


def _check_host(value: str) -> str:
    """A relay host: '[host]:port', 'host:port' or 'host'."""
    host = value
    port = None
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{value!r} is not host[:port]")
            port = rest[1:]
    elif ":" in host:
        host, _, port = host.rpartition(":")
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{value!r} has an invalid port")
    _check_ip_or_domain(host)
    return value


NO_CONTROL = BeforeValidator(_check_config_text)
"""Goes last in an ``Annotated[str, ...]``: it then runs first, and a pattern or length
before it stays in the JSON Schema editors read."""
ObjectName = Annotated[str, Field(pattern=OBJECT_NAME_PATTERN), NO_CONTROL]
"""``schemas.names``' one pattern, with the control-character check first so its message
names the character (a name becomes a file name and a config path)."""
ConfigText = Annotated[str, NO_CONTROL]
"""Any string that can reach a file on an appliance: no control characters (see
``_check_config_text``). Every other string type here ends in ``NO_CONTROL`` too."""
DomainName = Annotated[str, AfterValidator(_check_domain), NO_CONTROL]
RecordName = Annotated[str, AfterValidator(_check_record_name), NO_CONTROL]
PosixName = Annotated[str, AfterValidator(_check_posix_name), NO_CONTROL]
Text = Annotated[str, Field(max_length=256), NO_CONTROL]
SambaText = Annotated[Text, AfterValidator(_check_smb_value)]
"""A free-text value written into smb.conf (a share comment)."""
FullName = Annotated[Text, AfterValidator(_check_full_name)]
MailAddress = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$"),
                        AfterValidator(_check_address), NO_CONTROL]
SanName = Annotated[str, AfterValidator(_check_san), NO_CONTROL]
IPv4 = Annotated[ipaddress.IPv4Address, AfterValidator(_check_unscoped)]
IPv6 = Annotated[ipaddress.IPv6Address, AfterValidator(_check_unscoped)]
IPAddress = Annotated[ipaddress.IPv4Address | ipaddress.IPv6Address, BeforeValidator(_parse_ip)]
VaultValue = Annotated[str, AfterValidator(_check_vault)]
"""Not ``ConfigText``: an ansible-vault block has line breaks and is decrypted, never
written as it is; the engine checks the decrypted value (``engine/execution/extravars``)."""
SharePath = Annotated[str, AfterValidator(_check_share_path), AfterValidator(_check_smb_value),
                      NO_CONTROL]
SshKey = Annotated[str, AfterValidator(_check_ssh_key), NO_CONTROL]
Ttl = Annotated[int, Field(ge=60, le=604800)]


class Strict(BaseModel):
    """Base of every config model: unknown fields are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


# --------------------------------------------------------------------------- #
# Users and groups (tenant-wide)
# --------------------------------------------------------------------------- #


class User(Strict):
    """A POSIX account, created on every appliance that picks it up."""

    name: PosixName
    full_name: FullName = ""
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), NO_CONTROL] | None = None
    uid: Annotated[int, Field(ge=1000, le=60000)] | None = None
    groups: list[PosixName] = []
    shell: Literal[ALLOWED_SHELLS] = "/bin/bash"  # type: ignore[valid-type]
    ssh_keys: list[SshKey] = []
    state: Literal["present", "absent"] = "present"
    password: VaultValue | None = None
    """An ansible-vault encrypted crypt(3) hash (``mkpasswd -m sha-512``)."""
    samba_password: VaultValue | None = None
    """The user's password for file shares (SMB), ansible-vault encrypted. Samba keeps
    its own password database (an NT hash that cannot be derived from the crypt hash
    above), so a share user who should log on needs this; without it the account
    exists with a random password nobody knows."""


class Group(Strict):
    """A POSIX group; appliances pick up users by group."""

    name: PosixName
    gid: Annotated[int, Field(ge=1000, le=60000)] | None = None
    description: Text = ""


# --------------------------------------------------------------------------- #
# DNS
# --------------------------------------------------------------------------- #


class _Record(Strict):
    name: RecordName = "@"
    ttl: Ttl | None = None


class ARecord(_Record):
    type: Literal["A"]
    address: IPv4


class AAAARecord(_Record):
    type: Literal["AAAA"]
    address: IPv6


class CNAMERecord(_Record):
    type: Literal["CNAME"]
    target: RecordName


class MXRecord(_Record):
    type: Literal["MX"]
    priority: Annotated[int, Field(ge=0, le=65535)] = 10
    exchange: RecordName


class TXTRecord(_Record):
    type: Literal["TXT"]
    text: Annotated[str, Field(min_length=1, max_length=2048), NO_CONTROL]
    """Any printable text: the zone file gets it quoted, with '"' and '\\' escaped, so
    ';', '(', '$ORIGIN' and the like inside it are data."""


class SRVRecord(_Record):
    type: Literal["SRV"]
    priority: Annotated[int, Field(ge=0, le=65535)] = 0
    weight: Annotated[int, Field(ge=0, le=65535)] = 0
    port: Annotated[int, Field(ge=1, le=65535)]
    target: RecordName


class PTRRecord(_Record):
    type: Literal["PTR"]
    target: RecordName


Record = Annotated[
    ARecord | AAAARecord | CNAMERecord | MXRecord | TXTRecord | SRVRecord | PTRRecord,
    Field(discriminator="type"),
]


class Zone(Strict):
    """An authoritative zone served by the appliance."""

    name: DomainName
    ttl: Ttl = 3600
    records: list[Record] = []


class DnsSpec(Strict):
    zones: list[Zone] = []
    forwarders: list[IPAddress] = []


# --------------------------------------------------------------------------- #
# Samba
# --------------------------------------------------------------------------- #


class Share(Strict):
    name: Annotated[str, Field(pattern=_SHARE_NAME.pattern), AfterValidator(_check_share_name),
                    NO_CONTROL]
    path: SharePath
    comment: SambaText = ""
    read_only: bool = False
    browseable: bool = True
    valid_users: list[PosixName] = []
    valid_groups: list[PosixName] = []
    guest_ok: bool = False

    @model_validator(mode="after")
    def _guest_or_users(self) -> Share:
        if self.guest_ok and not self.read_only:
            raise ValueError("a guest share must be read_only: true")
        return self


class SambaSpec(Strict):
    workgroup: Annotated[str, Field(pattern=_NETBIOS.pattern), NO_CONTROL] = "WORKGROUP"
    shares: list[Share] = []


# --------------------------------------------------------------------------- #
# Mail
# --------------------------------------------------------------------------- #


class Mailbox(Strict):
    address: MailAddress
    user: PosixName

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()


class Alias(Strict):
    address: MailAddress
    destinations: Annotated[list[MailAddress], Field(min_length=1)]


class MailSpec(Strict):
    domains: list[DomainName] = []
    mailboxes: list[Mailbox] = []
    aliases: list[Alias] = []
    relay_host: Annotated[str, AfterValidator(_check_host), NO_CONTROL] | None = None
    message_size_limit: Annotated[int, Field(ge=1024, le=1 << 30)] = 26_214_400
    mailbox_size_limit: Annotated[int, Field(ge=0, le=1 << 40)] = 0
    """0 means unlimited."""


# --------------------------------------------------------------------------- #
# PKI
# --------------------------------------------------------------------------- #

KeyType = Literal["rsa2048", "rsa3072", "rsa4096", "ec256", "ec384"]
Consumer = Literal["mail", "samba", "dns"]


class CertificateAuthority(Strict):
    """The tenant's own CA; every appliance certificate chains to it."""

    common_name: Text
    key_type: KeyType = "ec256"
    validity_days: Annotated[int, Field(ge=365, le=7300)] = 3650


class Certificate(Strict):
    name: ObjectName
    common_name: DomainName
    sans: list[SanName] = []
    key_type: KeyType = "ec256"
    validity_days: Annotated[int, Field(ge=1, le=825)] = 365
    renew_before_days: Annotated[int, Field(ge=1, le=365)] = 30
    consumers: list[Consumer] = []

    @model_validator(mode="after")
    def _check(self) -> Certificate:
        if self.renew_before_days >= self.validity_days:
            raise ValueError("renew_before_days must be less than validity_days")
        return self


class PkiSpec(Strict):
    certificates: list[Certificate] = []


# --------------------------------------------------------------------------- #
# Documents
# --------------------------------------------------------------------------- #


class Metadata(Strict):
    name: ObjectName
    labels: dict[ObjectName, Text] = {}


class MaintenanceWindow(Strict):
    """When automatic changes may run: days of the week and a local time span."""

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(min_length=1)
    start: Annotated[str, Field(pattern=_TIME.pattern), NO_CONTROL]
    end: Annotated[str, Field(pattern=_TIME.pattern), NO_CONTROL]
    timezone: Annotated[str, Field(max_length=64), NO_CONTROL] = "UTC"


class PullRequestPolicy(Strict):
    """Merge rules of the tenant's pull requests (and who may skip them)."""

    required_approvals: Annotated[int, Field(ge=0, le=10)] = 1
    """Approvals by operators or admins, at the head commit, before a merge."""
    allow_self_approval: bool = False
    """Whether an author's own approval counts."""
    allow_direct_push: bool = False
    """Admins may push to main directly (still validated); nobody else ever may."""


class Policies(Strict):
    auto_sync: bool = True
    """Apply changes of main without an operator's sync."""
    self_heal: bool = True
    """Undo drift made on the appliance itself."""
    prune: bool = False
    """Remove what Hearth created and the YAML no longer lists."""
    maintenance_windows: list[MaintenanceWindow] = []
    """Empty means any time."""
    pull_requests: PullRequestPolicy = PullRequestPolicy()


class TenantSpec(Strict):
    display_name: Text
    primary_domain: DomainName
    policies: Policies = Policies()
    ca: CertificateAuthority | None = None


class UserSelection(Strict):
    """Which tenant-wide users an appliance carries: by group, by name, or both."""

    groups: list[PosixName] = []
    users: list[PosixName] = []


class ApplianceSpec(Strict):
    hostname: DomainName
    site: Text = ""
    users: UserSelection = UserSelection()
    dns: DnsSpec | None = None
    samba: SambaSpec | None = None
    mail: MailSpec | None = None
    pki: PkiSpec | None = None


class _Document(Strict):
    apiVersion: Literal["hearth/v1"]
    metadata: Metadata


class TenantDocument(_Document):
    kind: Literal["Tenant"]
    spec: TenantSpec


class UsersSpec(Strict):
    users: list[User] = []


class UsersDocument(_Document):
    kind: Literal["Users"]
    spec: UsersSpec


class GroupsSpec(Strict):
    groups: list[Group] = []


class GroupsDocument(_Document):
    kind: Literal["Groups"]
    spec: GroupsSpec


class ApplianceDocument(_Document):
    kind: Literal["Appliance"]
    spec: ApplianceSpec


DOCUMENT_MODELS: dict[str, type[_Document]] = {
    "Tenant": TenantDocument,
    "Users": UsersDocument,
    "Groups": GroupsDocument,
    "Appliance": ApplianceDocument,
}

TENANT_FILE = "tenant.yaml"
USERS_FILE = "users.yaml"
GROUPS_FILE = "groups.yaml"
APPLIANCES_DIR = "appliances"
SCHEMA_LINE_PREFIX = "# yaml-language-server: $schema="


def kind_for_path(path: str) -> str | None:
    """The document kind a repo path must hold, or None when the path is not in the layout."""
    if path == TENANT_FILE:
        return "Tenant"
    if path == USERS_FILE:
        return "Users"
    if path == GROUPS_FILE:
        return "Groups"
    directory, _, name = path.rpartition("/")
    if directory == APPLIANCES_DIR and name.endswith(".yaml") and OBJECT_NAME.fullmatch(name[:-5]):
        return "Appliance"
    return None


# --------------------------------------------------------------------------- #
# The tenant as a whole
# --------------------------------------------------------------------------- #

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Finding:
    """A cross-document fault: which file, where inside the document, and what."""

    file: str
    path: Path
    message: str


@dataclass(frozen=True)
class TenantConfig:
    """All documents of a tenant at one commit, validated one by one."""

    tenant: TenantDocument
    users: UsersDocument | None = None
    groups: GroupsDocument | None = None
    appliances: dict[str, ApplianceDocument] = field(default_factory=dict)
    """By appliance name (= file stem)."""

    def user_list(self) -> list[User]:
        return list(self.users.spec.users) if self.users else []

    def group_list(self) -> list[Group]:
        return list(self.groups.spec.groups) if self.groups else []


def appliance_file(name: str) -> str:
    return f"{APPLIANCES_DIR}/{name}.yaml"


def _duplicates(
    items: list[Any], key: str, *, file: str, base: Path, what: str
) -> list[Finding]:
    seen: dict[Any, int] = {}
    out = []
    for index, item in enumerate(items):
        value = getattr(item, key)
        if value in seen:
            out.append(
                Finding(file, (*base, index, key),
                        f"duplicate {what} {value!r} (first defined at item {seen[value] + 1})")
            )
        else:
            seen[value] = index
    return out


def check_references(config: TenantConfig) -> list[Finding]:
    """Cross-document checks; an empty list means the tenant is consistent."""
    findings = check_shared(config) + check_fleet(config)
    for name in sorted(config.appliances):
        findings += check_appliance(config, name)
    return findings


def check_shared(config: TenantConfig) -> list[Finding]:
    """Checks of the tenant-wide documents (users and groups) among themselves."""
    findings: list[Finding] = []
    users = config.user_list()
    groups = config.group_list()
    group_names = {g.name for g in groups}
    findings += _duplicates(users, "name", file=USERS_FILE, base=("spec", "users"), what="user")
    findings += _duplicates(groups, "name", file=GROUPS_FILE, base=("spec", "groups"),
                            what="group")
    uids = [u for u in users if u.uid is not None]
    findings += [
        Finding(f.file, (*f.path[:-1], "uid"), f.message)
        for f in _duplicates(uids, "uid", file=USERS_FILE, base=("spec", "users"), what="uid")
    ]
    for index, user in enumerate(users):
        for g_index, group in enumerate(user.groups):
            if group not in group_names:
                findings.append(Finding(
                    USERS_FILE, ("spec", "users", index, "groups", g_index),
                    f"user {user.name!r} is in group {group!r}, which {GROUPS_FILE} does not "
                    "define",
                ))
    return findings


def check_fleet(config: TenantConfig) -> list[Finding]:
    """Checks across appliances: hostnames are unique."""
    findings: list[Finding] = []
    hostnames: dict[str, str] = {}
    for name, doc in sorted(config.appliances.items()):
        hostname = doc.spec.hostname
        if hostname in hostnames:
            findings.append(Finding(
                appliance_file(name), ("spec", "hostname"),
                f"hostname {hostname!r} is also used by appliance {hostnames[hostname]!r}",
            ))
        hostnames.setdefault(hostname, name)
    return findings


def check_appliance(config: TenantConfig, name: str) -> list[Finding]:
    """Checks of one appliance against the tenant-wide documents.

    The result depends only on the appliance's document, ``tenant.yaml``,
    ``users.yaml`` and ``groups.yaml``, so a reader may cache it by their blob ids.
    """
    doc = config.appliances[name]
    file = appliance_file(name)
    findings: list[Finding] = []
    if doc.metadata.name != name:
        findings.append(Finding(
            file, ("metadata", "name"),
            f"metadata.name {doc.metadata.name!r} must match the file name {name!r}",
        ))
    spec = doc.spec
    group_names = {g.name for g in config.group_list()}
    user_names = {u.name for u in config.user_list()}
    for i, group in enumerate(spec.users.groups):
        if group not in group_names:
            findings.append(Finding(file, ("spec", "users", "groups", i),
                                    f"group {group!r} is not defined in {GROUPS_FILE}"))
    for i, user in enumerate(spec.users.users):
        if user not in user_names:
            findings.append(Finding(file, ("spec", "users", "users", i),
                                    f"user {user!r} is not defined in {USERS_FILE}"))
    selected = select_users(config, spec.users)
    carried = {u.name for u in selected}
    carried_groups = set(spec.users.groups) | {g for u in selected for g in u.groups}
    findings += _check_samba(spec.samba, file, carried, carried_groups, group_names)
    findings += _check_mail(spec.mail, file, carried)
    findings += _check_dns(spec.dns, file)
    findings += _check_pki(spec, file, config.tenant.spec.ca is not None)
    return findings


def _check_samba(samba: SambaSpec | None, file: str, carried: set[str],
                 carried_groups: set[str], group_names: set[str]) -> list[Finding]:
    if samba is None:
        return []
    base: Path = ("spec", "samba", "shares")
    out = _duplicates(samba.shares, "name", file=file, base=base, what="share")
    out += _duplicates(samba.shares, "path", file=file, base=base, what="share path")
    for index, share in enumerate(samba.shares):
        for i, user in enumerate(share.valid_users):
            if user not in carried:
                out.append(Finding(
                    file, (*base, index, "valid_users", i),
                    f"share {share.name!r} names user {user!r}, who is not carried by this "
                    "appliance (add the user or one of their groups under spec.users)",
                ))
        for i, group in enumerate(share.valid_groups):
            if group not in group_names:
                out.append(Finding(file, (*base, index, "valid_groups", i),
                                   f"share {share.name!r} names group {group!r}, which is not "
                                   "defined"))
            elif group not in carried_groups:
                out.append(Finding(file, (*base, index, "valid_groups", i),
                                   f"share {share.name!r} names group {group!r}, which this "
                                   "appliance does not carry"))
    return out


def _check_mail(mail: MailSpec | None, file: str, carried: set[str]) -> list[Finding]:
    if mail is None:
        return []
    out: list[Finding] = []
    domains = set(mail.domains)
    seen: dict[str, int] = {}
    for index, domain in enumerate(mail.domains):
        if domain in seen:
            out.append(Finding(file, ("spec", "mail", "domains", index),
                               f"duplicate mail domain {domain!r}"))
        seen.setdefault(domain, index)
    addresses: set[str] = set()
    for index, box in enumerate(mail.mailboxes):
        path: Path = ("spec", "mail", "mailboxes", index)
        if box.domain not in domains:
            out.append(Finding(file, (*path, "address"),
                               f"mailbox {box.address!r} is not in one of spec.mail.domains"))
        if box.user not in carried:
            out.append(Finding(file, (*path, "user"),
                               f"mailbox {box.address!r} belongs to user {box.user!r}, who is "
                               "not carried by this appliance"))
        if box.address.lower() in addresses:
            out.append(Finding(file, (*path, "address"), f"duplicate mailbox {box.address!r}"))
        addresses.add(box.address.lower())
    for index, alias in enumerate(mail.aliases):
        path = ("spec", "mail", "aliases", index, "address")
        if alias.address.rpartition("@")[2].lower() not in domains:
            out.append(Finding(file, path,
                               f"alias {alias.address!r} is not in one of spec.mail.domains"))
        if alias.address.lower() in addresses:
            out.append(Finding(file, path,
                               f"alias {alias.address!r} is also a mailbox or another alias"))
        addresses.add(alias.address.lower())
    return out


def _check_dns(dns: DnsSpec | None, file: str) -> list[Finding]:
    if dns is None:
        return []
    out = _duplicates(dns.zones, "name", file=file, base=("spec", "dns", "zones"), what="zone")
    for z_index, zone in enumerate(dns.zones):
        seen: dict[tuple[str, ...], int] = {}
        cname_names = {r.name for r in zone.records if r.type == "CNAME"}
        for index, record in enumerate(zone.records):
            path: Path = ("spec", "dns", "zones", z_index, "records", index)
            key = record_key(record)
            if key in seen:
                out.append(Finding(file, path, f"duplicate {record.type} record for "
                                               f"{record.name!r} in zone {zone.name!r}"))
            seen.setdefault(key, index)
            if record.type != "CNAME" and record.name in cname_names:
                out.append(Finding(file, (*path, "name"),
                                   f"{record.name!r} has a CNAME and a {record.type} record; a "
                                   "CNAME must be the only record of its name"))
    return out


def _check_pki(spec: ApplianceSpec, file: str, has_ca: bool) -> list[Finding]:
    if spec.pki is None:
        return []
    base: Path = ("spec", "pki", "certificates")
    out = _duplicates(spec.pki.certificates, "name", file=file, base=base, what="certificate")
    if spec.pki.certificates and not has_ca:
        out.append(Finding(file, ("spec", "pki"),
                           f"certificates need a tenant CA: set spec.ca in {TENANT_FILE}"))
    for index, cert in enumerate(spec.pki.certificates):
        for i, consumer in enumerate(cert.consumers):
            if getattr(spec, consumer) is None:
                out.append(Finding(
                    file, (*base, index, "consumers", i),
                    f"certificate {cert.name!r} is for {consumer!r}, which this appliance "
                    f"does not run (add spec.{consumer})",
                ))
    return out


def record_key(record: Any) -> tuple[str, ...]:
    """What makes a DNS record distinct within a zone (name, type and value)."""
    return tuple(str(getattr(record, k)) for k in sorted(type(record).model_fields)
                 if k != "ttl")


def select_users(config: TenantConfig, selection: UserSelection) -> list[User]:
    """Tenant users an appliance carries: named, or in one of the named groups."""
    wanted_groups = set(selection.groups)
    wanted_users = set(selection.users)
    return [
        u for u in config.user_list()
        if u.name in wanted_users or wanted_groups.intersection(u.groups)
    ]


# --------------------------------------------------------------------------- #
# Desired state of one appliance
# --------------------------------------------------------------------------- #


class UsersState(Strict):
    """The users domain as an appliance carries it: resolved users and their groups."""

    users: list[User] = []
    groups: list[Group] = []


class DesiredAppliance(Strict):
    """Everything one appliance should be, resolved from the tenant's documents."""

    tenant: ObjectName
    name: ObjectName
    hostname: DomainName
    site: Text = ""
    policies: Policies
    ca: CertificateAuthority | None = None
    users: UsersState
    dns: DnsSpec | None = None
    samba: SambaSpec | None = None
    mail: MailSpec | None = None
    pki: PkiSpec | None = None

    def domains(self) -> list[str]:
        """Names of the domains this appliance runs, in apply order (pki first)."""
        return [d for d in DOMAIN_ORDER if d == "users" or getattr(self, d) is not None]


def resolve_appliance(config: TenantConfig, name: str, *, tenant: str | None = None
                      ) -> DesiredAppliance:
    """The desired state of appliance ``name``; ``KeyError`` when it does not exist.

    ``tenant`` is the tenant it is served for (its repository's name); it
    defaults to ``metadata.name`` of ``tenant.yaml``.
    """
    doc = config.appliances[name]
    users = select_users(config, doc.spec.users)
    group_names = set(doc.spec.users.groups) | {g for u in users for g in u.groups}
    groups = [g for g in config.group_list() if g.name in group_names]
    return DesiredAppliance(
        tenant=tenant or config.tenant.metadata.name,
        name=name,
        hostname=doc.spec.hostname,
        site=doc.spec.site,
        policies=config.tenant.spec.policies,
        ca=config.tenant.spec.ca,
        users=UsersState(users=users, groups=groups),
        dns=doc.spec.dns,
        samba=doc.spec.samba,
        mail=doc.spec.mail,
        pki=doc.spec.pki,
    )


def json_schemas() -> dict[str, dict[str, Any]]:
    """A JSON Schema per document kind, for editors (yaml-language-server)."""
    out = {}
    for kind, model in DOCUMENT_MODELS.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://hearth.dev/schemas/{kind.lower()}.json"
        out[kind] = schema
    return out
