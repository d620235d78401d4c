"""Console pages that are the person's own: personal access tokens, and support requests.

Tokens: the page lists, creates and revokes the person's tokens through the
API's own handlers (``api.routes.tokens``), so what is stored and audited is
the same whichever way a token was made.

Support: the assistant's routes (``POST /api/v1/support``,
``GET /api/v1/support`` and ``GET /api/v1/support/{id}``) belong to the support
service. The console calls them in process, as the person (a one-minute API
token of the same person), so the API's guard and the service decide
everything. Until the app serves ``POST /api/v1/support`` the page says the
assistant is not available.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import httpx
from litestar import Litestar, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, PathParameter
from litestar.response import Redirect, Template
from pydantic import BaseModel, Field

from api.auth import issue_person_token
from api.context import ApiContext
from api.routes import tokens as token_routes
from api.ui.web import UI, page, principal_of

SUPPORT_PATH = "/api/v1/support"
_FORM = Body(media_type=RequestEncodingType.URL_ENCODED)


# --- personal access tokens -------------------------------------------------------------


async def _tokens_page(request: Request, *, created: Any = None, status: int = 200) -> Template:
    ctx: ApiContext = request.app.state.ctx
    async with ctx.pool.acquire() as conn:
        rows = await token_routes.list_tokens.fn(conn=conn, principal=principal_of(request))
    return page(request, "tokens.html", tokens=rows, created=created, status=status)


@get(f"{UI}/tokens", opt={"permission": "tokens.list"})
async def tokens_page(request: Request) -> Template:
    return await _tokens_page(request)


class TokenForm(BaseModel):
    name: Annotated[str, Field(max_length=100)] = ""
    scope: Literal["read", "write"] = "read"
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] = 90


@post(f"{UI}/tokens", opt={"permission": "tokens.create"}, status_code=201)
async def create_token(request: Request, data: Annotated[TokenForm, _FORM]) -> Template:
    """The new token is on this response's page only (it is never shown again)."""
    ctx: ApiContext = request.app.state.ctx
    async with ctx.pool.acquire() as conn:
        created = await token_routes.create_token.fn(
            data=token_routes.TokenCreate(name=data.name, scope=data.scope,
                                          expires_in_days=data.expires_in_days),
            conn=conn, ctx=ctx, principal=principal_of(request))
    return await _tokens_page(request, created=created, status=201)


@post(f"{UI}/tokens/{{token_id:int}}/revoke", opt={"permission": "tokens.revoke"},
      status_code=303)
async def revoke_token(request: Request,
                       token_id: Annotated[int, PathParameter(ge=1, le=2**62)]) -> Redirect:
    ctx: ApiContext = request.app.state.ctx
    async with ctx.pool.acquire() as conn:
        await token_routes.revoke_token.fn(token_id=token_id, conn=conn,
                                           principal=principal_of(request))
    return Redirect(f"{UI}/tokens", status_code=303)


# --- support requests -------------------------------------------------------------------


def support_available(app: Litestar) -> bool:
    """Whether this app serves the assistant's route (the feature check)."""
    return any(route.path == SUPPORT_PATH and "POST" in getattr(route, "methods", ())
               for route in app.routes)


async def _as_person(request: Request, method: str, path: str,
                     body: dict[str, Any] | None = None) -> httpx.Response:
    """Call an API route of this app in process as the logged-in person."""
    ctx: ApiContext = request.app.state.ctx
    principal = principal_of(request)
    version = principal.claims.version if principal.claims is not None else 0
    token = issue_person_token(secret=ctx.settings.jwt_secret,
                               person_id=int(principal.id or 0), lifetime=60, version=version)
    transport = httpx.ASGITransport(app=request.app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://console.internal",
                                 headers={"Authorization": f"Bearer {token}"},
                                 timeout=30) as client:
        return await client.request(method, path, json=body)


def _listing(response: httpx.Response) -> list[dict[str, Any]]:
    if response.status_code != 200:
        return []
    body = response.json()
    items = body.get("items", body) if isinstance(body, dict) else body
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


@get(f"{UI}/tenants/{{tenant:str}}/support", opt={"permission": "tenants.get"})
async def support_page(request: Request, tenant: FromPath[str]) -> Template:
    available = support_available(request.app)
    earlier = _listing(await _as_person(request, "GET", SUPPORT_PATH)) if available else []
    return page(request, "support.html", tenant=request.state.tenant["name"],
                available=available, earlier=earlier, error=None)


class SupportForm(BaseModel):
    message: Annotated[str, Field(min_length=1, max_length=4000)]
    appliance: Annotated[str, Field(max_length=63)] = ""


@post(f"{UI}/tenants/{{tenant:str}}/support", opt={"permission": "tenants.get"},
      status_code=303)
async def support_submit(request: Request, tenant: FromPath[str],
                         data: Annotated[SupportForm, _FORM]) -> Redirect | Template:
    name = request.state.tenant["name"]
    if not support_available(request.app):
        return page(request, "support.html", status=503, tenant=name, available=False,
                    earlier=[], error=None)
    body: dict[str, Any] = {"message": data.message}
    if data.appliance:
        body["appliance"] = data.appliance
    response = await _as_person(request, "POST", SUPPORT_PATH, body)
    if response.status_code >= 400:
        detail = response.json().get("detail", "") if response.headers.get(
            "content-type", "").startswith("application/") else ""
        return page(request, "support.html", status=response.status_code, tenant=name,
                    available=True, earlier=[], error=detail or "The request was refused.")
    request_id = response.json().get("id")
    return Redirect(f"{UI}/tenants/{name}/support/{request_id}", status_code=303)


@get(f"{UI}/tenants/{{tenant:str}}/support/{{request_id:int}}", opt={"permission": "tenants.get"})
async def support_request_page(request: Request, tenant: FromPath[str],
                               request_id: Annotated[int, PathParameter(ge=1, le=2**62)]
                               ) -> Template:
    name = request.state.tenant["name"]
    if not support_available(request.app):
        return page(request, "support.html", status=404, tenant=name, available=False,
                    earlier=[], error=None)
    response = await _as_person(request, "GET", f"{SUPPORT_PATH}/{request_id}")
    if response.status_code != 200:
        return page(request, "error.html", status=404, title="Not found", status_code=404,
                    detail="")
    return page(request, "support_request.html", tenant=name, item=response.json())


ROUTES = [tokens_page, create_token, revoke_token, support_page, support_submit,
          support_request_page]
