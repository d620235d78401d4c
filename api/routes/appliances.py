"""One appliance: its status, its token (rotate, revoke) and its desired config.

The config view carries vault ciphertext only for the roles that manage the
appliance (and the appliance itself); auditors see it redacted.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, HeaderParameter

from api.deps import ApplianceRow, Caller, Conn, Ctx, TenantRow
from api.errors import problem_responses
from api.models import ApplianceCredentials, ApplianceOut
from api.status_view import appliance_view
from engine.db import appliances, audit
from schemas.config import VAULT_PREFIX, DesiredAppliance

_ERRORS = problem_responses(401, 403, 404)


@get("/api/v1/appliances/{appliance_id:uuid}", opt={"permission": "appliances.get"},
     tags=["appliances"], responses=_ERRORS)
async def get_appliance(appliance_id: FromPath[uuid.UUID], conn: Conn, ctx: Ctx,
                        tenant_row: TenantRow) -> ApplianceOut:
    row = await appliances.status_row(conn, appliance_id)
    desired = await ctx.revision(tenant_row["name"])
    error = await ctx.source.head_error(tenant_row["name"])
    return appliance_view(row, source=ctx.source, desired_revision=desired, source_error=error,
                          now=datetime.now(UTC), heartbeat_interval=ctx.settings.heartbeat_interval)


@post("/api/v1/appliances/{appliance_id:uuid}/token", opt={"permission": "appliances.rotate"},
      tags=["appliances"], status_code=200, responses=_ERRORS,
      summary="Revoke the appliance's token and issue a new one (shown once)")
async def rotate_token(appliance_id: FromPath[uuid.UUID], conn: Conn, ctx: Ctx,
                       principal: Caller, appliance_row: ApplianceRow) -> ApplianceCredentials:
    token = await appliances.rotate_token(conn, appliance_id=appliance_id,
                                          secret_key=ctx.settings.secret_key)
    await audit.record(conn, actor_kind="person", actor_id=principal.id,
                       tenant_id=appliance_row["tenant_id"], action="appliance.token.rotate",
                       outcome="success", target=f"appliance:{appliance_id}",
                       details={"hint": token[-4:]})
    return ApplianceCredentials(appliance_id=appliance_id, tenant=appliance_row["tenant"],
                                name=appliance_row["name"], token=token)


@delete("/api/v1/appliances/{appliance_id:uuid}/token", opt={"permission": "appliances.revoke"},
        tags=["appliances"], responses=_ERRORS, summary="Revoke every token of the appliance")
async def revoke_token(appliance_id: FromPath[uuid.UUID], conn: Conn, principal: Caller,
                       appliance_row: ApplianceRow) -> None:
    count = await appliances.revoke_tokens(conn, appliance_id=appliance_id)
    await audit.record(conn, actor_kind="person", actor_id=principal.id,
                       tenant_id=appliance_row["tenant_id"], action="appliance.token.revoke",
                       outcome="success", target=f"appliance:{appliance_id}",
                       details={"revoked": count})


@get("/api/v1/appliance/{appliance_id:uuid}/config", opt={"permission": "appliances.config"},
     tags=["appliances"],
     responses={**problem_responses(401, 403, 404, 409),
                304: ResponseSpec(None, description="Not modified (If-None-Match matched)")},
     summary="Desired state at the head of the tenant's main; ETag is the commit id")
async def get_config(
    appliance_id: FromPath[uuid.UUID], ctx: Ctx, appliance_row: ApplianceRow, request: Request,
    if_none_match: Annotated[str | None, HeaderParameter(name="If-None-Match", max_length=200)]
    = None,
) -> Response[DesiredAppliance | None]:
    desired = await ctx.source.config(ctx.pool, appliance_row["tenant"], appliance_row["name"])
    etag = f'"{desired.revision}"'
    wanted = {t.strip().removeprefix("W/") for t in (if_none_match or "").split(",")}
    if etag in wanted or "*" in wanted:
        return Response(None, status_code=304, headers={"ETag": etag})
    body: Any = desired.appliance
    if request.state.role not in VAULT_READERS:
        body = redact_vault_values(desired.appliance.model_dump(mode="json"))
    return Response(body, headers={"ETag": etag, "Cache-Control": "no-cache"})


VAULT_READERS = frozenset({"admin", "operator", "appliance"})
"""Roles whose config views include vault ciphertext; auditors and customers see
``REDACTED`` in its place (issue 16: a leaked view must not help a vault attack)."""
REDACTED = "$ANSIBLE_VAULT;redacted"


def redact_vault_values(value: Any) -> Any:
    """``value`` with every ansible-vault ciphertext replaced by ``REDACTED``."""
    if isinstance(value, str):
        return REDACTED if value.lstrip().startswith(VAULT_PREFIX) else value
    if isinstance(value, dict):
        return {key: redact_vault_values(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_vault_values(item) for item in value]
    return value


ROUTES = [get_appliance, rotate_token, revoke_token, get_config]
