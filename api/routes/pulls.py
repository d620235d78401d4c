"""Pull requests of a tenant, and writing files on branches. Handlers only parse and call
``engine.pulls.service.PullRequests`` (``ctx.pulls``)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from litestar import Request, get, post, put
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter

from api.deps import Caller, Ctx, TenantRow
from api.errors import problem_responses
from api.routes.appliances import VAULT_READERS
from engine.pulls.service import PullRequests
from schemas.pulls import (
    FileWrite,
    FileWritten,
    MergeResult,
    PullCreate,
    PullDiff,
    PullOut,
    ReviewCreate,
)

_ERRORS = problem_responses(401, 403, 404)
_WRITE_ERRORS = problem_responses(400, 401, 403, 404, 409, 422)
Number = Annotated[int, PathParameter(ge=1, le=2**31 - 1)]
_BASE = "/api/v1/tenants/{tenant:str}/pulls"


def _service(ctx: Ctx) -> PullRequests:
    assert ctx.pulls is not None, "create_app always builds the pull request service"
    return ctx.pulls


@get(_BASE, opt={"permission": "pulls.list"}, tags=["pulls"], responses=_ERRORS,
     summary="Pull requests of the tenant, newest first")
async def list_pulls(tenant: FromPath[str], ctx: Ctx, tenant_row: TenantRow,
                     status: Annotated[Literal["open", "merged", "closed"] | None,
                                       QueryParameter(name="state")] = None) -> list[PullOut]:
    return await _service(ctx).list(tenant_row, state=status)


@post(_BASE, opt={"permission": "pulls.create"}, tags=["pulls"], status_code=201,
      responses=_WRITE_ERRORS, summary="Open a pull request from a branch; checks start")
async def create_pull(tenant: FromPath[str], data: JSONBody[PullCreate], ctx: Ctx,
                      principal: Caller, tenant_row: TenantRow, request: Request) -> PullOut:
    return await _service(ctx).open(tenant_row, data, author_kind=request.state.role,
                                    author_id=str(principal.id))


@get(_BASE + "/{number:int}", opt={"permission": "pulls.get"}, tags=["pulls"],
     responses=_ERRORS, summary="One pull request with its checks, plan preview and reviews")
async def get_pull(tenant: FromPath[str], number: Number, ctx: Ctx, tenant_row: TenantRow
                   ) -> PullOut:
    return await _service(ctx).get(tenant_row, number)


@get(_BASE + "/{number:int}/diff", opt={"permission": "pulls.diff"}, tags=["pulls"],
     responses=_ERRORS, summary="Changed files and the unified diff against main")
async def get_diff(tenant: FromPath[str], number: Number, ctx: Ctx, tenant_row: TenantRow,
                   request: Request) -> PullDiff:
    diff = await _service(ctx).diff(tenant_row, number)
    if request.state.role not in VAULT_READERS:
        diff = diff.model_copy(update={"patch": redact_vault_lines(diff.patch)})
    return diff


_VAULT_BODY_LINE = re.compile(r"^([+\- ]\s*)[0-9a-f]+\s*$")


def redact_vault_lines(patch: str) -> str:
    """A unified diff with the hex lines of every vault value (the lines after a
    ``$ANSIBLE_VAULT;`` header) replaced by one marker line."""
    out: list[str] = []
    in_vault = False
    for line in patch.split("\n"):
        match = _VAULT_BODY_LINE.match(line) if in_vault else None
        if match:
            marker = f"{match.group(1)}<vault ciphertext redacted>"
            if out[-1] != marker:
                out.append(marker)
            continue
        in_vault = "$ANSIBLE_VAULT;" in line
        out.append(line)
    return "\n".join(out)


@post(_BASE + "/{number:int}/reviews", opt={"permission": "pulls.review"}, tags=["pulls"],
      status_code=201, responses=_WRITE_ERRORS, summary="Approve, request changes or comment")
async def create_review(tenant: FromPath[str], number: Number, data: JSONBody[ReviewCreate],
                        ctx: Ctx, principal: Caller, tenant_row: TenantRow, request: Request
                        ) -> PullOut:
    return await _service(ctx).review(tenant_row, number, data, person_id=int(principal.id or 0),
                                      username=principal.username or "",
                                      role=request.state.role)


@post(_BASE + "/{number:int}/merge", opt={"permission": "pulls.merge"}, tags=["pulls"],
      status_code=200, responses=_WRITE_ERRORS,
      summary="Merge into main (merge commit with trailers); reconcile starts at once")
async def merge_pull(tenant: FromPath[str], number: Number, ctx: Ctx, principal: Caller,
                     tenant_row: TenantRow) -> MergeResult:
    return await _service(ctx).merge(tenant_row, number, person_id=int(principal.id or 0),
                                     username=principal.username or "")


@post(_BASE + "/{number:int}/close", opt={"permission": "pulls.close"}, tags=["pulls"],
      status_code=200, responses=_WRITE_ERRORS, summary="Close without merging")
async def close_pull(tenant: FromPath[str], number: Number, ctx: Ctx, principal: Caller,
                     tenant_row: TenantRow) -> PullOut:
    return await _service(ctx).close(tenant_row, number, person_id=int(principal.id or 0))


@post(_BASE + "/{number:int}/revert", opt={"permission": "pulls.revert"}, tags=["pulls"],
      status_code=201, responses=_WRITE_ERRORS,
      summary="Open a pull request that undoes a merged one")
async def revert_pull(tenant: FromPath[str], number: Number, ctx: Ctx, principal: Caller,
                      tenant_row: TenantRow, request: Request) -> PullOut:
    return await _service(ctx).revert(tenant_row, number, person_id=int(principal.id or 0),
                                      username=principal.username or "",
                                      role=request.state.role)


@put("/api/v1/tenants/{tenant:str}/branches/{branch:str}/files/{path:path}",
     opt={"permission": "branches.write"}, tags=["pulls"], responses=_WRITE_ERRORS,
     summary="Commit one file on a branch: new content, or round-trip YAML edits")
async def write_file(tenant: FromPath[str], branch: FromPath[str], path: FromPath[str],
                     data: JSONBody[FileWrite], ctx: Ctx, principal: Caller,
                     tenant_row: TenantRow) -> FileWritten:
    relative = path.lstrip("/")
    commit = await _service(ctx).write_file(
        tenant_row, branch=branch, path=relative, data=data, person_id=int(principal.id or 0),
        username=principal.username or "")
    return FileWritten(branch=branch, path=relative, commit=commit)


ROUTES = [list_pulls, create_pull, get_pull, get_diff, create_review, merge_pull, close_pull,
          revert_pull, write_file]
