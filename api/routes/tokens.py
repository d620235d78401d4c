"""Personal access tokens of the caller: ``/api/v1/me/tokens`` (create, list, revoke).

A token is what a person types as the password when ``git`` asks (see
``api.routes.git``). The new token is in the create response only; the list
shows hints (last four characters), never tokens. Every change is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from litestar import delete, get, post
from litestar.params import JSONBody, PathParameter
from pydantic import Field

from api.deps import Caller, Conn, Ctx
from api.errors import problem_responses
from api.models import Request, Response
from engine.db import audit
from engine.db import tokens as token_db

_ERRORS = problem_responses(401, 403, 404)


class TokenCreate(Request):
    name: Annotated[str, Field(max_length=100)] = ""
    scope: Literal["read", "write"] = "write"
    """``read``: clone and fetch; ``write``: also push (still only where the role allows)."""
    expires_in_days: Annotated[int, Field(ge=1, le=3650)] | None = 90
    """None: never expires."""


class PersonalTokenOut(Response):
    id: int
    name: str
    scope: str
    hint: str
    """The token's last four characters."""
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class PersonalTokenCreated(PersonalTokenOut):
    """Returned once, when the token is made; the server keeps only a hash."""

    token: str


@post("/api/v1/me/tokens", opt={"permission": "tokens.create"}, tags=["tokens"],
      status_code=201, responses=problem_responses(401, 403),
      summary="Make a personal access token for git over HTTP (shown once)")
async def create_token(data: JSONBody[TokenCreate], conn: Conn, ctx: Ctx,
                       principal: Caller) -> PersonalTokenCreated:
    expires = (None if data.expires_in_days is None
               else datetime.now(UTC) + timedelta(days=data.expires_in_days))
    row, token = await token_db.create_token(
        conn, person_id=int(principal.id or 0), name=data.name, scope=data.scope,
        expires_at=expires, secret_key=ctx.settings.secret_key)
    await audit.record(conn, actor_kind="person", actor_id=principal.id, action="token.create",
                       outcome="success", target=f"token:{row['id']}",
                       details={"scope": data.scope, "hint": row["hint"]})
    return PersonalTokenCreated(token=token, **_fields(row))


@get("/api/v1/me/tokens", opt={"permission": "tokens.list"}, tags=["tokens"],
     responses=problem_responses(401, 403), summary="The caller's personal access tokens")
async def list_tokens(conn: Conn, principal: Caller) -> list[PersonalTokenOut]:
    return [PersonalTokenOut(**_fields(r))
            for r in await token_db.list_tokens(conn, person_id=int(principal.id or 0))]


@delete("/api/v1/me/tokens/{token_id:int}", opt={"permission": "tokens.revoke"}, tags=["tokens"],
        responses=_ERRORS, summary="Revoke one of the caller's tokens")
async def revoke_token(token_id: Annotated[int, PathParameter(ge=1, le=2**62)], conn: Conn,
                       principal: Caller) -> None:
    row = await token_db.revoke_token(conn, person_id=int(principal.id or 0), token_id=token_id)
    await audit.record(conn, actor_kind="person", actor_id=principal.id, action="token.revoke",
                       outcome="success", target=f"token:{row['id']}",
                       details={"hint": row["hint"]})


def _fields(row: dict) -> dict:
    return {k: row[k] for k in ("id", "name", "scope", "hint", "created_at", "expires_at",
                                "revoked_at", "last_used_at")}


ROUTES = [create_token, list_tokens, revoke_token]
