"""Console pages of pull requests: the list, one pull request (file diff, checks with
file:line errors, plan preview per appliance, reviews) and its actions.

Actions post forms to handlers under the API's permission names
(``pulls.review``, ``pulls.merge``, ``pulls.close``, ``pulls.revert``) that call
the same ``engine.pulls.service.PullRequests`` methods as the API; which
buttons a page shows is asked of the same table (``api.ui.web.can``), and
what the service refuses (not mergeable, already merged) comes back as a page
in the service's words.
"""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, PathParameter, QueryParameter
from litestar.response import Redirect, Template
from pydantic import BaseModel, Field

from api.context import ApiContext
from api.ui.web import UI, can, page, principal_of
from engine.pulls.service import PullRequests
from schemas.pulls import ReviewCreate

Number = Annotated[int, PathParameter(ge=1, le=2**31 - 1)]
_BASE = f"{UI}/tenants/{{tenant:str}}/pulls"


def _service(request: Request) -> PullRequests:
    ctx: ApiContext = request.app.state.ctx
    assert ctx.pulls is not None, "create_app always builds the pull request service"
    return ctx.pulls


def _url(tenant: str, number: int) -> str:
    return f"{UI}/tenants/{tenant}/pulls/{number}"


@get(_BASE, opt={"permission": "pulls.list"})
async def pulls_page(
    request: Request, tenant: FromPath[str],
    wanted: Annotated[Literal["open", "merged", "closed"] | None,
                      QueryParameter(name="state")] = None,
) -> Template:
    pulls = await _service(request).list(request.state.tenant, state=wanted)
    return page(request, "pulls.html", tenant=request.state.tenant["name"], pulls=pulls,
                state=wanted or "")


def _diff_lines(patch: str) -> list[tuple[str, str]]:
    """The unified diff as (css class, line) pairs."""
    out = []
    for line in patch.splitlines():
        kind = ("file" if line.startswith(("diff --git", "+++", "---")) else
                "hunk" if line.startswith("@@") else
                "add" if line.startswith("+") else "del" if line.startswith("-") else "ctx")
        out.append((kind, line))
    return out


@get(_BASE + "/{number:int}", opt={"permission": "pulls.get"})
async def pull_page(request: Request, tenant: FromPath[str], number: Number) -> Template:
    service = _service(request)
    tenant_row = request.state.tenant
    role = request.state.role
    pull = await service.get(tenant_row, number)
    diff = await service.diff(tenant_row, number) if can(role, "pulls.diff") else None
    is_open = pull.state == "open"
    return page(request, "pull.html", tenant=tenant_row["name"], pull=pull, diff=diff,
                lines=_diff_lines(diff.patch) if diff else [],
                can_review=is_open and can(role, "pulls.review"),
                can_merge=is_open and can(role, "pulls.merge"),
                can_close=is_open and can(role, "pulls.close"),
                can_revert=pull.state == "merged" and can(role, "pulls.revert"))


class ReviewForm(BaseModel):
    event: Literal["approve", "request_changes", "comment"]
    body: Annotated[str, Field(max_length=20_000)] = ""


_FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


@post(_BASE + "/{number:int}/reviews", opt={"permission": "pulls.review"}, status_code=303)
async def review(request: Request, tenant: FromPath[str], number: Number,
                 data: Annotated[ReviewForm, _FORM]) -> Redirect:
    principal = principal_of(request)
    await _service(request).review(
        request.state.tenant, number, ReviewCreate(event=data.event, body=data.body),
        person_id=int(principal.id or 0), username=principal.username or "",
        role=request.state.role)
    return Redirect(_url(tenant, number), status_code=303)


@post(_BASE + "/{number:int}/merge", opt={"permission": "pulls.merge"}, status_code=303)
async def merge(request: Request, tenant: FromPath[str], number: Number) -> Redirect:
    principal = principal_of(request)
    await _service(request).merge(request.state.tenant, number, person_id=int(principal.id or 0),
                                  username=principal.username or "")
    return Redirect(_url(tenant, number), status_code=303)


@post(_BASE + "/{number:int}/close", opt={"permission": "pulls.close"}, status_code=303)
async def close(request: Request, tenant: FromPath[str], number: Number) -> Redirect:
    principal = principal_of(request)
    await _service(request).close(request.state.tenant, number, person_id=int(principal.id or 0))
    return Redirect(_url(tenant, number), status_code=303)


@post(_BASE + "/{number:int}/revert", opt={"permission": "pulls.revert"}, status_code=303)
async def revert(request: Request, tenant: FromPath[str], number: Number) -> Redirect:
    principal = principal_of(request)
    reverted = await _service(request).revert(
        request.state.tenant, number, person_id=int(principal.id or 0),
        username=principal.username or "", role=request.state.role)
    return Redirect(_url(tenant, reverted.number), status_code=303)


ROUTES = [pulls_page, pull_page, review, merge, close, revert]
