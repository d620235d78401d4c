"""Reading the fleet: tenants and their appliances with status; registering appliances."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import get, post
from litestar.params import FromPath, JSONBody

from api.deps import Caller, Conn, Ctx, TenantRow
from api.errors import problem_responses
from api.models import ApplianceCredentials, ApplianceOut, ApplianceRegister, TenantOut
from api.status_view import appliance_view
from engine.db import appliances, audit, tenants

_ERRORS = problem_responses(401, 403, 404)


async def _tenant_out(ctx: Ctx, row: dict[str, Any]) -> TenantOut:
    return TenantOut(head_revision=await ctx.revision(row["name"]), **{
        k: row[k] for k in ("name", "display_name", "last_good_revision", "validation_status",
                            "validation_errors")})


@get("/api/v1/tenants", opt={"permission": "tenants.list"}, tags=["tenants"],
     responses=problem_responses(401, 403))
async def list_tenants(conn: Conn, ctx: Ctx, principal: Caller
                       ) -> list[TenantOut]:
    only = None if principal.is_admin else [tid for tid, _ in principal.memberships.values()]
    return [await _tenant_out(ctx, row) for row in await tenants.list_tenants(conn, only_ids=only)]


@get("/api/v1/tenants/{tenant:str}", opt={"permission": "tenants.get"}, tags=["tenants"],
     responses=_ERRORS)
async def get_tenant(tenant: FromPath[str], ctx: Ctx, tenant_row: TenantRow) -> TenantOut:
    return await _tenant_out(ctx, tenant_row)


@get("/api/v1/tenants/{tenant:str}/appliances", opt={"permission": "tenants.appliances"},
     tags=["tenants"], responses=_ERRORS)
async def list_appliances(tenant: FromPath[str], conn: Conn, ctx: Ctx,
                          tenant_row: TenantRow) -> list[ApplianceOut]:
    desired = await ctx.revision(tenant)
    error = await ctx.source.head_error(tenant)
    now = datetime.now(UTC)
    rows = await appliances.status_rows(conn, tenant_id=tenant_row["id"])
    return [appliance_view(row, source=ctx.source, desired_revision=desired, source_error=error,
                           now=now, heartbeat_interval=ctx.settings.heartbeat_interval)
            for row in rows]


@post("/api/v1/tenants/{tenant:str}/appliances", opt={"permission": "appliances.register"},
      tags=["appliances"], responses=problem_responses(401, 403, 404, 409),
      summary="Register an appliance; its token is in this response and nowhere else")
async def register_appliance(tenant: FromPath[str], data: JSONBody[ApplianceRegister], conn: Conn,
                             ctx: Ctx, principal: Caller,
                             tenant_row: TenantRow) -> ApplianceCredentials:
    row, token = await appliances.register_appliance(
        conn, tenant_id=tenant_row["id"], name=data.name, hostname=data.hostname,
        address=data.address,
        secret_key=ctx.settings.secret_key)
    await audit.record(conn, actor_kind="person", actor_id=principal.id,
                       tenant_id=tenant_row["id"], action="appliance.token.issue",
                       outcome="success", target=f"appliance:{row['id']}",
                       details={"hint": token[-4:]})
    return ApplianceCredentials(appliance_id=row["id"], tenant=tenant, name=row["name"],
                                token=token)


ROUTES = [list_tenants, get_tenant, list_appliances, register_appliance]
