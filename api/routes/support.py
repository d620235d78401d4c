"""Support requests: ask in plain language, then follow the reply and its pull request.

``POST /api/v1/support`` stores and queues a request and answers 202 with it; the
worker asks the model and writes the reply (poll ``GET /api/v1/support/{id}``).
The tenant comes from authentication: the caller's only tenant, or the one named in
the body, which must be one the caller has a role in (else 404, as for any tenant
that is not theirs). Customers see only their own requests; operators, admins and
auditors see every request of their tenants.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Request, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from api.auth import Principal
from api.deps import Caller, Ctx
from api.errors import problem_responses
from engine.assistant.service import SupportService
from engine.errors import NotFoundError, PermissionDeniedError
from schemas.intents import SupportCreate, SupportOut, SupportStatus

_ERRORS = problem_responses(401, 403, 404)
_WRITE_ERRORS = problem_responses(400, 401, 403, 404, 422, 429)
SupportId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]
_ASKERS = frozenset({"admin", "operator", "customer"})


def _service(ctx: Ctx) -> SupportService:
    assert ctx.support is not None, "create_app always builds the support service"
    return ctx.support


async def _tenant_for(ctx: Ctx, principal: Principal, name: str | None) -> tuple[dict, str]:
    """(tenant row, role) of the tenant a request is for, from the caller's memberships."""
    if name is None:
        if principal.is_admin or len(principal.memberships) != 1:
            raise NotFoundError("name the tenant: you belong to more than one")
        name = next(iter(principal.memberships))
    async with ctx.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT id, name FROM tenants WHERE name = $1", name)
    role = None if row is None else principal.role_in_tenant(row["id"])
    if role is None:
        raise NotFoundError("not found")
    if role not in _ASKERS:
        raise PermissionDeniedError(f"role {role!r} may not ask for changes")
    return dict(row), role


@post("/api/v1/support", opt={"permission": "support.create"}, tags=["support"],
      status_code=202, responses=_WRITE_ERRORS,
      summary="Ask the assistant; the reply arrives on GET /api/v1/support/{id}")
async def create_request(data: JSONBody[SupportCreate], ctx: Ctx, principal: Caller
                         ) -> SupportOut:
    tenant_row, role = await _tenant_for(ctx, principal, data.tenant)
    return await _service(ctx).submit(
        tenant_row=tenant_row, person_id=int(principal.id or 0), role=role,
        message=data.message, appliance=data.appliance, conversation_id=data.conversation_id)


@get("/api/v1/support", opt={"permission": "support.list"}, tags=["support"],
     responses=_ERRORS, summary="Support requests, newest first (customers: their own)")
async def list_requests(ctx: Ctx, principal: Caller,
                        tenant: Annotated[str | None, QueryParameter(max_length=63)] = None,
                        status: Annotated[SupportStatus | None, QueryParameter()] = None,
                        ) -> list[SupportOut]:
    visible: list[int] = []
    own_only = False
    async with ctx.pool.acquire() as conn:
        rows = await conn.fetch("SELECT id, name FROM tenants WHERE $1::text IS NULL OR name = $1",
                                tenant)
    for row in rows:
        role = principal.role_in_tenant(row["id"])
        if role is None:
            continue
        visible.append(row["id"])
        own_only = own_only or role == "customer"
    if tenant is not None and not visible:
        raise NotFoundError("not found")
    return await _service(ctx).list(tenant_ids=visible,
                                     person_id=int(principal.id or 0) if own_only else None,
                                     status=status)


@get("/api/v1/support/{support_id:int}", opt={"permission": "support.get"}, tags=["support"],
     responses=_ERRORS, summary="One request: the reply and the pull request through to applied")
async def get_request(support_id: SupportId, ctx: Ctx, principal: Caller, request: Request
                      ) -> SupportOut:
    own = int(principal.id or 0) if request.state.role == "customer" else None
    return await _service(ctx).get(support_id, person_id=own)


ROUTES = [create_request, list_requests, get_request]
