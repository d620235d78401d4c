"""Request, update and response bodies of the API (none of the responses carry secrets).

The only secrets ever sent are the ones a caller must receive once: a JWT
from ``POST /auth/token`` and a new appliance token from register/rotate.
Those have their own response models, so no other model can leak them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.address import ManagementAddress
from schemas.names import ObjectName
from schemas.status import ApplianceStatus

Username = Annotated[str, Field(pattern=r"^[a-z][a-z0-9._-]{1,63}$")]
Password = Annotated[str, Field(min_length=12, max_length=256)]
Hostname = Annotated[str, Field(min_length=1, max_length=253,
                                pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")]
Role = Literal["operator", "customer", "auditor"]


def _reject_nul(value: object, where: str) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where or 'a value'} contains a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key, where)
            _reject_nul(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for item in value:
            _reject_nul(item, where)


class Request(BaseModel):
    """A request body: unknown fields are refused, and so is a NUL character anywhere
    (no Hearth value can hold one, and PostgreSQL text cannot store it); strict, so
    ``"123"`` is not a number and ``"yes"`` not true."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: object) -> object:
        _reject_nul(data, "")
        return data


class Response(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- auth -----------------------------------------------------------------------


class TokenRequest(Request):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class AccessToken(Response):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (a scheme name)
    expires_in: int
    """Seconds until the access token expires."""
    refresh_token: str
    """Spent by ``POST /api/v1/auth/refresh`` for a new pair; valid ``refresh_expires_in``
    seconds unless the session ends first (logout, new password, disable)."""
    refresh_expires_in: int


class RefreshRequest(Request):
    refresh_token: Annotated[str, Field(min_length=1, max_length=128)]


# --- people ---------------------------------------------------------------------


class PersonCreate(Request):
    username: Username
    password: Password
    is_admin: bool = False


class PersonUpdate(Request):
    password: Password | None = None
    is_admin: bool | None = None
    disabled: bool | None = None


class MembershipOut(Response):
    tenant: str
    role: Role


class PersonOut(Response):
    id: int
    username: str
    is_admin: bool
    disabled: bool
    created_at: datetime
    memberships: list[MembershipOut] = []


class MembershipPut(Request):
    role: Role


# --- tenants and appliances -----------------------------------------------------


class TenantOut(Response):
    name: str
    display_name: str
    head_revision: str | None
    """Head of the tenant's main branch."""
    last_good_revision: str | None
    validation_status: Literal["unknown", "valid", "invalid"]
    validation_errors: list[dict[str, object]] = []


class ApplianceOut(Response):
    id: uuid.UUID
    tenant: str
    name: str
    hostname: str | None
    address: str | None
    """Where Hearth's Ansible reaches the box (set at registration, never from git)."""
    status: ApplianceStatus
    last_heartbeat_at: datetime | None
    last_sequence: int | None
    agent_version: str | None


class ApplianceRegister(Request):
    name: ObjectName
    hostname: Hostname | None = None
    address: ManagementAddress | None = None
    """The management address Ansible connects to (IP address or DNS name)."""


class ApplianceCredentials(Response):
    """Returned once, when a token is issued or rotated; the server keeps only a hash."""

    appliance_id: uuid.UUID
    tenant: str
    name: str
    token: str
