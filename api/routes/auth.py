"""Sessions: log in (a short access token and a refresh token), refresh, log out.

``POST /api/v1/auth/token`` exchanges a username and password for a pair;
``POST /api/v1/auth/refresh`` spends the refresh token for a new pair (the
CLI and console do it when the access token expires); ``POST
/api/v1/auth/logout`` ends the caller's access token and its session at once.
"""

from __future__ import annotations

from litestar import Request, post
from litestar.params import JSONBody

from api import metrics
from api.auth import IssuedTokens, login, logout, refresh
from api.deps import Caller, Ctx
from api.errors import problem_responses
from api.models import AccessToken, RefreshRequest, TokenRequest
from engine.errors import HearthError


def _answer(issued: IssuedTokens) -> AccessToken:
    return AccessToken(access_token=issued.access_token, expires_in=issued.expires_in,
                       refresh_token=issued.refresh_token,
                       refresh_expires_in=issued.refresh_expires_in)


@post("/api/v1/auth/token", opt={"permission": "auth.token"}, tags=["auth"], status_code=200,
      summary="Exchange a username and password for an access token and a refresh token",
      responses=problem_responses(401, 415, 429), security=[])
async def issue_token(data: JSONBody[TokenRequest], ctx: Ctx, request: Request) -> AccessToken:
    source = request.client.host if request.client else "unknown"
    try:
        issued = await login(ctx, username=data.username, password=data.password, source=source)
    except HearthError:
        metrics.LOGINS.labels(outcome="failure").inc()
        raise
    metrics.LOGINS.labels(outcome="success").inc()
    return _answer(issued)


@post("/api/v1/auth/refresh", opt={"permission": "auth.refresh"}, tags=["auth"],
      status_code=200, responses=problem_responses(401, 415, 429), security=[],
      summary="Spend a refresh token for a new access token and refresh token")
async def refresh_token(data: JSONBody[RefreshRequest], ctx: Ctx) -> AccessToken:
    return _answer(await refresh(ctx, refresh_token=data.refresh_token))


@post("/api/v1/auth/logout", opt={"permission": "auth.logout"}, tags=["auth"],
      status_code=204, responses=problem_responses(401),
      summary="End the caller's access token and its session (its refresh token)")
async def end_session(ctx: Ctx, principal: Caller) -> None:
    await logout(ctx, principal)


ROUTES = [issue_token, refresh_token, end_session]
