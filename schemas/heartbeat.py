"""What an appliance reports: the heartbeat and the observed state inside it.

Observed state has the shape of the desired domains (``schemas.config``) so
the planner can compare like with like, but it is lenient where the desired
models are strict: it describes what *is* on the box, and a box that drifted
outside the rules (a share outside /srv, a user with a capital letter) must
still be reportable. Every string and list is bounded so a heartbeat stays
small (the API also caps the body at 64 KiB).

The agent (``ansible/roles/agent/files/hearth-agent.py``, standard library
only) produces exactly this shape; ``tests`` check the two agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Str = Annotated[str, Field(max_length=512)]
Name = Annotated[str, Field(min_length=1, max_length=255)]
Revision = Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]


class Observed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObservedUser(Observed):
    name: Name
    uid: int | None = None
    full_name: Str = ""
    groups: Annotated[list[Name], Field(max_length=256)] = Field(default_factory=list)
    """Supplementary groups, sorted."""
    shell: Str = ""
    ssh_keys: Annotated[list[Annotated[str, Field(max_length=16384)]], Field(max_length=64)] | None = (
        Field(default_factory=list))
    """None: the agent could not read ``authorized_keys`` safely (``ssh_keys_error`` says
    why); the planner takes that as no evidence about the keys, not as no keys."""
    ssh_keys_error: Str | None = None
    has_password: bool = False


class ObservedGroup(Observed):
    name: Name
    gid: int | None = None


class ObservedUsers(Observed):
    users: Annotated[list[ObservedUser], Field(max_length=2000)] = Field(default_factory=list)
    """Accounts with a uid in the regular range (1000-60000); system accounts are not reported."""
    groups: Annotated[list[ObservedGroup], Field(max_length=2000)] = Field(default_factory=list)


class ObservedRecord(Observed):
    """One resource record as the zone file holds it, rdata as presentation text."""

    name: Name
    type: Literal["A", "AAAA", "CNAME", "MX", "TXT", "SRV", "PTR", "NS", "SOA"]
    ttl: int | None = None
    data: Annotated[str, Field(max_length=4096)]


class ObservedZone(Observed):
    name: Name
    serial: int | None = None
    records: Annotated[list[ObservedRecord], Field(max_length=5000)] = Field(default_factory=list)
    valid: bool = True
    """named-checkzone accepted the file."""


class ObservedDns(Observed):
    zones: Annotated[list[ObservedZone], Field(max_length=200)] = Field(default_factory=list)
    forwarders: Annotated[list[Name], Field(max_length=16)] = Field(default_factory=list)


class ObservedShare(Observed):
    name: Name
    path: Str
    comment: Str = ""
    read_only: bool = False
    browseable: bool = True
    valid_users: Annotated[list[Name], Field(max_length=1000)] = Field(default_factory=list)
    valid_groups: Annotated[list[Name], Field(max_length=1000)] = Field(default_factory=list)
    guest_ok: bool = False
    path_exists: bool = True


class ObservedSamba(Observed):
    workgroup: Str = ""
    shares: Annotated[list[ObservedShare], Field(max_length=500)] = Field(default_factory=list)
    samba_users: Annotated[list[Name], Field(max_length=2000)] = Field(default_factory=list)
    """Accounts in Samba's passdb (pdbedit -L)."""


class ObservedMailbox(Observed):
    address: Name
    user: Name


class ObservedAlias(Observed):
    address: Name
    destinations: Annotated[list[Name], Field(max_length=100)]


class ObservedMail(Observed):
    domains: Annotated[list[Name], Field(max_length=200)] = Field(default_factory=list)
    mailboxes: Annotated[list[ObservedMailbox], Field(max_length=5000)] = Field(default_factory=list)
    aliases: Annotated[list[ObservedAlias], Field(max_length=5000)] = Field(default_factory=list)
    relay_host: Str | None = None
    message_size_limit: int | None = None
    mailbox_size_limit: int | None = None


class ObservedCertificate(Observed):
    name: Name
    common_name: Str
    sans: Annotated[list[Name], Field(max_length=100)] = Field(default_factory=list)
    key_type: Str = ""
    not_before: datetime | None = None
    not_after: datetime | None = None
    issuer: Str = ""
    fingerprint_sha256: Str = ""
    chains_to_ca: bool = False
    consumers: Annotated[list[Name], Field(max_length=8)] = Field(default_factory=list)


class ObservedPki(Observed):
    ca_common_name: Str | None = None
    ca_fingerprint_sha256: Str | None = None
    certificates: Annotated[list[ObservedCertificate], Field(max_length=200)] = Field(default_factory=list)


ProbeName = Literal["users", "dns", "samba", "mail", "pki", "services", "facts"]


class ObservedState(Observed):
    """The appliance as it is; a domain the box does not run is None.

    A domain named in ``unknown`` is None too, but for another reason: its probe
    failed, so there is no evidence either way (the planner plans nothing for it
    rather than "not running"). ``services`` and ``facts`` there mean the
    heartbeat's list or dict of that name is empty for the same reason.
    """

    users: ObservedUsers | None = None
    dns: ObservedDns | None = None
    samba: ObservedSamba | None = None
    mail: ObservedMail | None = None
    pki: ObservedPki | None = None
    unknown: Annotated[dict[ProbeName, Str], Field(max_length=7)] = Field(default_factory=dict)
    """Probe -> why it failed (exception type and message). Agents before this field
    never send it; an empty map means every probe ran."""


class ServiceHealth(Observed):
    name: Name
    status: Literal["running", "stopped", "failed", "unknown"]
    message: Str = ""


FactValue = Annotated[str, Field(max_length=512)] | int | float | bool | None


class Heartbeat(Observed):
    """``POST /api/v1/heartbeat``: the appliance is the token's, never the body's.

    Strict at the top level: a sequence sent as ``"123"`` is refused, not coerced
    (``sent_at`` alone is parsed from its ISO text)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    sequence: Annotated[int, Field(ge=0, le=2**62)]
    """Strictly increasing per appliance; persisted on the box across restarts."""
    sent_at: Annotated[AwareDatetime, Field(strict=False)]
    agent_version: Annotated[str, Field(min_length=1, max_length=64)]
    applied_revision: Revision | None = None
    """The commit the last successful run converged the box to, as the box recorded it."""
    applied_run: Annotated[int, Field(ge=1, le=2**62)] | None = None
    """The id of that run (the run's last play records it with the revision). A report
    naming an older run than the last one that succeeded on the box was collected
    before that run ended. None: no run recorded one yet, or an agent from before the
    field (which never sends it)."""
    observed: ObservedState = Field(default_factory=ObservedState)
    services: Annotated[list[ServiceHealth], Field(max_length=32)] = Field(default_factory=list)
    facts: Annotated[dict[Annotated[str, Field(max_length=64)], FactValue],
                     Field(max_length=64)] = Field(default_factory=dict)


class HeartbeatAck(BaseModel):
    """The answer to a heartbeat."""

    model_config = ConfigDict(frozen=True)

    accepted_sequence: int
    desired_revision: Revision | None
    """Head of the tenant's main the appliance should converge to."""
    next_interval_seconds: int


class SequenceBaseline(BaseModel):
    """The answer to ``POST /api/v1/heartbeat/reenrol``: where the appliance's sequence stands."""

    model_config = ConfigDict(frozen=True)

    last_sequence: Annotated[int, Field(ge=0)]
    """The last sequence stored for the token's appliance (0 before its first heartbeat);
    the agent's next heartbeat must be above it."""


def observed_from_json(data: dict[str, Any]) -> ObservedState:
    return ObservedState.model_validate(data)
