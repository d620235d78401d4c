"""``POST /api/v1/auth/token``: a username and password for a short-lived JWT."""

from __future__ import annotations

from litestar import Request, post
from litestar.params import JSONBody

from api import metrics
from api.auth import login
from api.deps import Ctx
from api.errors import problem_responses
from api.models import AccessToken, TokenRequest
from engine.errors import HearthError


@post("/api/v1/auth/token", opt={"permission": "auth.token"}, tags=["auth"], status_code=200,
      summary="Exchange a username and password for an access token",
      responses=problem_responses(401, 429), security=[])
async def issue_token(data: JSONBody[TokenRequest], ctx: Ctx, request: Request) -> AccessToken:
    source = request.client.host if request.client else "unknown"
    try:
        token, lifetime = await login(ctx, username=data.username, password=data.password,
                                      source=source)
    except HearthError:
        metrics.LOGINS.labels(outcome="failure").inc()
        raise
    metrics.LOGINS.labels(outcome="success").inc()
    return AccessToken(access_token=token, expires_in=lifetime)


ROUTES = [issue_token]
