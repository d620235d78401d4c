"""Console sessions: log in, log out, the session cookie, CSRF and the HTML headers.

A session is the cookie ``hearth_session``: a JWT of the person signed like
the API's (``api.auth``) but with audience ``hearth-ui`` and an
eight-hour lifetime, set ``Secure; HttpOnly; SameSite=Strict; Path=/ui``. The
cookie names the person only; who they are allowed to be is read from the
database on every request (``api.auth.person_principal``), exactly as for a
bearer token, so disabling a person or removing a membership takes effect
at once. Logging out deletes the cookie and remembers the token's ``jti`` in
Redis until it would have expired, so a copied cookie dies with the session.

The cookie is read only under ``/ui``: the API never accepts it, so a page on
another site cannot drive the API with it. Every form carries a CSRF token
(Litestar's double-submit ``CSRFMiddleware`` on the console's router: a
signed ``hearth_csrf`` cookie and a ``_csrf_token`` field that must match);
a post without it is refused with 403 before any handler runs.

Every console response carries a strict Content-Security-Policy (scripts,
styles and connections from this origin only, no inline script, no framing),
``X-Frame-Options: DENY``, ``nosniff``, ``Referrer-Policy: same-origin`` and
``Cache-Control: no-store`` on HTML.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.enums import RequestEncodingType
from litestar.middleware.base import DefineMiddleware
from litestar.middleware.csrf import CSRFMiddleware
from litestar.params import Body, FromPath, QueryParameter
from litestar.response import Redirect, Template
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from pydantic import BaseModel, Field

from api.auth import UI_AUDIENCE, console_login, decode_person_token, person_principal
from api.context import ApiContext
from api.ui.web import UI, page, principal_of
from engine.errors import AuthenticationError, RateLimitedError

SESSION_COOKIE = "hearth_session"
CSRF_COOKIE = "hearth_csrf"
SESSION_SECONDS = 8 * 3600
_LOGGED_OUT = "hearth:ui-logout:"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


def csrf_middleware(secret: str) -> DefineMiddleware:
    return DefineMiddleware(CSRFMiddleware, config=CSRFConfig(
        secret=secret, cookie_name=CSRF_COOKIE, cookie_path=UI, cookie_secure=True,
        cookie_httponly=True, cookie_samesite="strict", header_name="x-csrftoken"))


def security_headers(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: the headers above on every response, ``no-store`` on HTML."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in SECURITY_HEADERS:
                    headers[name.decode()] = value.decode()
                if headers.get("content-type", "").startswith("text/html"):
                    headers["cache-control"] = "no-store"
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


def session_middleware(app: ASGIApp) -> ASGIApp:
    """ASGI middleware: a valid session cookie makes the request the person's. Runs after
    the app's bearer authentication, and only where that left the caller anonymous."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if scope["type"] == "http" and (user is None or user.kind == "anonymous"):
            token = ASGIConnection(scope).cookies.get(SESSION_COOKIE)
            if token:
                ctx: ApiContext = scope["app"].state.ctx
                principal = await _session_principal(ctx, token)
                if principal is not None:
                    scope["user"] = principal
                    scope["auth"] = "session"
        await app(scope, receive, send)

    return middleware


async def _session_principal(ctx: ApiContext, token: str) -> Any:
    try:
        claims = decode_person_token(secret=ctx.settings.jwt_secret, token=token,
                                     audience=UI_AUDIENCE)
    except AuthenticationError:
        return None
    if await ctx.redis.exists(_LOGGED_OUT + str(claims.jti)):
        return None
    return await person_principal(ctx, claims)


def _session_cookie(value: str, max_age: int) -> Cookie:
    return Cookie(key=SESSION_COOKIE, value=value, path=UI, max_age=max_age, secure=True,
                  httponly=True, samesite="strict")


def _local(target: str | None) -> str:
    """Where to go after logging in: a console path only (never another site)."""
    if target and target.startswith(f"{UI}/") and not target.startswith("//") \
            and "\\" not in target and "://" not in target:
        return target
    return f"{UI}/"


class LoginForm(BaseModel):
    username: Annotated[str, Field(min_length=1, max_length=100)]
    password: Annotated[str, Field(min_length=1, max_length=1000)]
    next: Annotated[str, Field(max_length=500)] = ""


@get(f"{UI}/login", opt={"permission": "ui.public"})
async def login_page(request: Request,
                     after: Annotated[str, QueryParameter(name="next", max_length=500)] = ""
                     ) -> Template:
    return page(request, "login.html", next=_local(after), error=None)


@post(f"{UI}/login", opt={"permission": "ui.public"}, status_code=303)
async def login_submit(
    request: Request,
    data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Redirect | Template:
    ctx: ApiContext = request.app.state.ctx
    source = request.client.host if request.client else "unknown"
    try:
        token, lifetime = await console_login(ctx, username=data.username,
                                              password=data.password, source=source,
                                              lifetime=SESSION_SECONDS)
    except (AuthenticationError, RateLimitedError) as exc:
        message = ("Too many failed attempts; try again later."
                   if isinstance(exc, RateLimitedError) else "Wrong username or password.")
        return page(request, "login.html", status=401 if isinstance(exc, AuthenticationError)
                    else 429, next=_local(data.next), error=message)
    return Redirect(_local(data.next), status_code=303,
                    cookies=[_session_cookie(token, lifetime)])


@post(f"{UI}/logout", opt={"permission": "ui.public"}, status_code=303)
async def logout(request: Request) -> Redirect:
    ctx: ApiContext = request.app.state.ctx
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        try:
            claims = decode_person_token(secret=ctx.settings.jwt_secret, token=token,
                                         audience=UI_AUDIENCE)
            ttl = max(1, claims.expires_at - int(time.time()) + 10)
            await ctx.redis.set(_LOGGED_OUT + str(claims.jti), b"1", ex=ttl)
        except AuthenticationError:
            pass
    return Redirect(f"{UI}/login", status_code=303, cookies=[_session_cookie("", 0)])


@get(UI, opt={"permission": "ui.session"})
async def home(request: Request) -> Redirect:
    """Customers land on their tenant's page; everyone else on the fleet."""
    principal = principal_of(request)
    if not principal.is_admin and principal.memberships and all(
            role == "customer" for _, role in principal.memberships.values()):
        return Redirect(f"{UI}/tenants/{sorted(principal.memberships)[0]}", status_code=303)
    return Redirect(f"{UI}/fleet", status_code=303)


@get(f"{UI}/{{rest:path}}", opt={"permission": "ui.public"})
async def not_found(request: Request, rest: FromPath[str]) -> Template:
    """Any other console path: the same 404 page as a tenant one has no role in."""
    return page(request, "error.html", status=404, title="Not found", status_code=404,
                detail="")


ROUTES = [login_page, login_submit, logout, home, not_found]
