"""The assistant's vocabulary: typed intents, the model's reply, and the support API bodies.

A language model's output is untrusted input. It is parsed into
``ModelReply`` with ``model_validate_json``; anything that does not parse is
a failed reply, never a guess. The set of intents is closed: an intent type
not listed here cannot be expressed, so it cannot be carried out. Every string
has a ``max_length`` and every list a ``max_length``, so the JSON Schema handed
to the model as ``format=`` (``reply_format_schema``) bounds every string with
``maxLength`` (small models otherwise repeat inside a string until the token
cap and return invalid JSON). Names carry Hearth's patterns when validated;
the schema for the model leaves patterns out (constrained decoding of regular
expressions is uneven across engines), and validation here catches what the
model writes wrong.

Permission levels (``PERMISSION``) say who may ask for an intent through the
assistant: ``customer`` (customers, operators and admins), ``operator``
(operators and admins; a customer's request is refused), ``never`` (nobody:
the assistant refuses; a person must do it). The tenant is never a field of
an intent: it comes from authentication.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MESSAGE_MAX = 2000
"""Characters of a customer's message (the API refuses longer ones)."""
TEXT_MAX = 300
"""Characters of the model's answer, question or refusal text."""
INTENTS_MAX = 5
"""Intents in one reply; a request for more is split by the customer or an operator."""

Name = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]
"""A user or group name (POSIX), as ``schemas.config`` checks it."""
ShareName = Annotated[str, Field(min_length=1, max_length=80,
                                 pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,79}$")]
Appliance = Annotated[str, Field(min_length=1, max_length=63,
                                 pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
FullName = Annotated[str, Field(max_length=100)]
Email = Annotated[str, Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
RecordName = Annotated[str, Field(min_length=1, max_length=253)]
RecordValue = Annotated[str, Field(min_length=1, max_length=253)]


class _Intent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AddUser(_Intent):
    type: Literal["add_user"]
    username: Name
    full_name: FullName = ""
    email: Email | None = None
    groups: list[Name] = Field(default=[], max_length=8)


class RemoveUser(_Intent):
    type: Literal["remove_user"]
    username: Name


class AddToGroup(_Intent):
    type: Literal["add_to_group"]
    username: Name
    group: Name


class RemoveFromGroup(_Intent):
    type: Literal["remove_from_group"]
    username: Name
    group: Name


class ResetPassword(_Intent):
    type: Literal["reset_password"]
    username: Name


class CreateShare(_Intent):
    type: Literal["create_share"]
    appliance: Appliance | None = None
    name: ShareName
    groups: list[Name] = Field(default=[], max_length=8)
    users: list[Name] = Field(default=[], max_length=8)
    read_only: bool = False


class RemoveShare(_Intent):
    type: Literal["remove_share"]
    appliance: Appliance | None = None
    name: ShareName


class GrantShareAccess(_Intent):
    type: Literal["grant_share_access"]
    appliance: Appliance | None = None
    share: ShareName
    user: Name | None = None
    group: Name | None = None


class RevokeShareAccess(_Intent):
    type: Literal["revoke_share_access"]
    appliance: Appliance | None = None
    share: ShareName
    user: Name | None = None
    group: Name | None = None


class AddMailbox(_Intent):
    type: Literal["add_mailbox"]
    appliance: Appliance | None = None
    address: Email
    username: Name


class AddAlias(_Intent):
    type: Literal["add_alias"]
    appliance: Appliance | None = None
    address: Email
    destinations: list[Email] = Field(min_length=1, max_length=8)


class AddDnsRecord(_Intent):
    type: Literal["add_dns_record"]
    appliance: Appliance | None = None
    zone: RecordName
    name: RecordName
    record_type: Literal["A", "AAAA", "CNAME"]
    value: RecordValue


class ChangeDnsRecord(_Intent):
    type: Literal["change_dns_record"]
    appliance: Appliance | None = None
    zone: RecordName
    name: RecordName
    record_type: Literal["A", "AAAA", "CNAME"]
    value: RecordValue


class RemoveDnsRecord(_Intent):
    type: Literal["remove_dns_record"]
    appliance: Appliance | None = None
    zone: RecordName
    name: RecordName
    record_type: Literal["A", "AAAA", "CNAME"]


class IssueCertificate(_Intent):
    type: Literal["issue_certificate"]
    appliance: Appliance | None = None
    name: Appliance
    common_name: RecordName


Intent = Annotated[
    AddUser | RemoveUser | AddToGroup | RemoveFromGroup | ResetPassword | CreateShare
    | RemoveShare | GrantShareAccess | RevokeShareAccess | AddMailbox | AddAlias | AddDnsRecord
    | ChangeDnsRecord | RemoveDnsRecord | IssueCertificate,
    Field(discriminator="type")]

PermissionLevel = Literal["customer", "operator", "never"]
PERMISSION: dict[str, PermissionLevel] = {
    "add_user": "customer",
    "remove_user": "customer",
    "add_to_group": "customer",
    "remove_from_group": "customer",
    "reset_password": "never",  # an operator sets it; the assistant never sees a password
    "create_share": "customer",
    "remove_share": "operator",  # the data stays, but everyone loses access at once
    "grant_share_access": "customer",
    "revoke_share_access": "customer",
    "add_mailbox": "customer",
    "add_alias": "customer",
    "add_dns_record": "operator",
    "change_dns_record": "operator",
    "remove_dns_record": "operator",
    "issue_certificate": "operator",
}
"""Who may ask the assistant for each intent type (see the module docstring)."""


ReplyKind = Literal["answer", "change", "question", "refusal"]


class ModelReply(BaseModel):
    """What the model must return: one kind, a text for people, and intents for a change."""

    model_config = ConfigDict(extra="forbid")

    kind: ReplyKind
    text: Annotated[str, Field(max_length=TEXT_MAX)] = ""
    intents: list[Intent] = Field(default=[], max_length=INTENTS_MAX)


def _strip(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items()
                if k not in ("pattern", "discriminator", "title", "default")}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def reply_format_schema() -> dict[str, Any]:
    """The JSON Schema given to the model as ``format=``: ``ModelReply`` without patterns,
    titles and defaults, every string bounded (``maxLength``), ``text`` and ``kind`` required."""
    schema = _strip(copy.deepcopy(ModelReply.model_json_schema()))
    schema["required"] = ["kind", "text", "intents"]
    return schema


# --------------------------------------------------------------------------- API bodies


SupportStatus = Literal["queued", "waiting_for_model", "answered", "question", "refused",
                        "pull_request_opened", "failed"]


class SupportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: Annotated[str, Field(min_length=1, max_length=MESSAGE_MAX)]
    tenant: Appliance | None = None
    """Needed only when the caller belongs to more than one tenant; checked against the
    caller's memberships (a tenant the caller has no role in is not found)."""
    appliance: Appliance | None = None
    conversation_id: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None


class SupportPull(BaseModel):
    number: int
    state: str
    """``open``, ``merged``, ``closed``, or ``applied`` once every appliance it changes runs
    a revision that contains its merge commit."""
    mergeable: str | None = None
    merge_commit: str | None = None


class SupportOut(BaseModel):
    id: int
    tenant: str
    requested_by: str | None
    conversation_id: int | None
    appliance: str | None
    message: str
    status: SupportStatus
    reply_kind: ReplyKind | None
    reply: str | None
    intents: list[dict[str, Any]]
    attempts: int
    error: str | None
    pull_request: SupportPull | None
    created_at: datetime
    updated_at: datetime
