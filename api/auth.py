"""Who is calling, and may they: credentials, principals and the permission matrix.

Two kinds of credential, told apart by shape:

- people send ``Authorization: Bearer <JWT>``: HS256 only (the algorithm is
  fixed, never read from the token), audience ``hearth-api``, issuer
  ``hearth``, ``exp``/``iat``/``sub`` required, 15 minutes by default. The
  person and their memberships are read on every request, in the same query
  as the token's standing: its ``ver`` must equal the person's token version
  (a new password or a disable bumps it), and neither its ``jti`` nor its
  session (``sid``) may have been logged out. So disabling a user, removing
  a membership, changing a password or logging out takes effect at once. A
  login opens a session whose refresh token buys new access tokens
  (``login``, ``refresh``, ``logout`` below; ``engine.db.sessions``).
- appliances send ``Authorization: Bearer hth_app_…``: an opaque token whose
  HMAC is looked up (in batches, see ``engine.db.appliances.TokenResolver``)
  on every request, so revocation is immediate. A route that marks itself
  ``opt[DEFERRED_APPLIANCE_TOKEN]`` (the heartbeat) gets ``DEFERRED_APPLIANCE``
  once the token is known live (looked up here, or seen live by this process in
  the last minute: ``ApiContext.live_tokens``), so its body is never parsed for
  a made-up token; the route looks the token up again in its own write
  statement and answers 401 itself if it was revoked since. Unknown tokens are
  counted per client address and answered 429 beyond a per-minute limit, so
  inventing tokens buys no fresh allowance. An appliance token is never
  accepted where a person is expected, and a JWT never where an appliance is.

Authorization is the table ``PERMISSIONS``: every route names its entry in
``opt["permission"]`` and the guard ``authorize`` (installed on the whole
app) checks it, so a route without an entry cannot be served. A rule has a
scope: ``public`` (no credentials), ``global`` (the caller's roles anywhere),
``tenant`` (path parameter ``tenant``), ``appliance`` (path parameter
``appliance_id``), ``run`` (``run_id``) or ``support`` (``support_id``, a support
request). For scoped rules the caller's role *in that tenant* is
what counts, and a caller with no role there gets 404, exactly as if the
tenant or appliance did not exist (nothing is read or stored on its behalf;
the denial is audited without naming the tenant, and it is audited the same way
when the tenant does not exist, so the work done, and so the time taken, does
not tell the two apart).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import jwt
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from api import throttle
from api.context import ApiContext
from engine.db import appliances, audit, people, sessions, support, tenants
from engine.errors import (
    AuthenticationError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
)

Role = Literal["admin", "operator", "customer", "auditor", "appliance", "anonymous"]
Scope = Literal["public", "global", "tenant", "appliance", "run", "support"]
ROLES: tuple[Role, ...] = ("admin", "operator", "customer", "auditor", "appliance", "anonymous")

JWT_ALGORITHM = "HS256"
JWT_AUDIENCE = "hearth-api"
JWT_ISSUER = "hearth"
UI_AUDIENCE = "hearth-ui"
"""The console's session cookie is a JWT of the same person with this audience, so a
session cookie is never accepted as a bearer token by the API, nor a bearer token as a
session (``api.ui.session``)."""
INT64_LIMIT = 2**63
"""Every id is a PostgreSQL bigint: an integer from a client at or beyond this (or below its
negative) names nothing, and must be refused before it reaches a query."""


@dataclass(frozen=True, slots=True)
class Rule:
    scope: Scope
    roles: frozenset[Role]


def _rule(scope: Scope, *roles: Role) -> Rule:
    return Rule(scope, frozenset(roles))


_PEOPLE = ("admin", "operator", "customer", "auditor")

PERMISSIONS: dict[str, Rule] = {
    "health": _rule("public", *ROLES),
    "ready": _rule("public", *ROLES),
    "metrics": _rule("public", *ROLES),
    "auth.token": _rule("global", *ROLES),
    "auth.refresh": _rule("global", *ROLES),
    "auth.logout": _rule("global", *_PEOPLE),
    "people.list": _rule("global", "admin"),
    "people.create": _rule("global", "admin"),
    "people.get": _rule("global", "admin"),
    "people.update": _rule("global", "admin"),
    "memberships.put": _rule("tenant", "admin"),
    "memberships.delete": _rule("tenant", "admin"),
    "tenants.list": _rule("global", *_PEOPLE),
    "tenants.get": _rule("tenant", *_PEOPLE),
    "tenants.appliances": _rule("tenant", *_PEOPLE),
    "appliances.register": _rule("tenant", "admin", "operator"),
    "appliances.get": _rule("appliance", *_PEOPLE),
    "appliances.rotate": _rule("appliance", "admin", "operator"),
    "appliances.revoke": _rule("appliance", "admin", "operator"),
    "appliances.config": _rule("appliance", "admin", "operator", "auditor", "appliance"),
    "heartbeat": _rule("global", "appliance"),
    "appliances.sync": _rule("appliance", "admin", "operator"),
    "appliances.diff": _rule("appliance", "admin", "operator", "auditor"),
    "appliances.runs": _rule("appliance", "admin", "operator", "auditor"),
    "runs.get": _rule("run", "admin", "operator", "auditor"),
    "runs.events": _rule("run", "admin", "operator", "auditor"),
    "tokens.create": _rule("global", *_PEOPLE),
    "tokens.list": _rule("global", *_PEOPLE),
    "tokens.revoke": _rule("global", *_PEOPLE),
    "git.read": _rule("tenant", *_PEOPLE),
    "git.push": _rule("tenant", "admin", "operator"),
    "pulls.list": _rule("tenant", *_PEOPLE),
    "pulls.get": _rule("tenant", *_PEOPLE),
    "pulls.diff": _rule("tenant", *_PEOPLE),
    "pulls.create": _rule("tenant", "admin", "operator", "customer"),
    "pulls.review": _rule("tenant", "admin", "operator"),
    "pulls.merge": _rule("tenant", "admin", "operator"),
    "pulls.close": _rule("tenant", "admin", "operator"),
    "pulls.revert": _rule("tenant", "admin", "operator"),
    "branches.write": _rule("tenant", "admin", "operator"),
    "history.list": _rule("tenant", *_PEOPLE),
    "audit.list": _rule("tenant", "admin", "operator", "auditor"),
    # The handler resolves the tenant (the caller's only one, or the one named and checked
    # against the caller's memberships); customers see only their own requests.
    "support.create": _rule("global", "admin", "operator", "customer"),
    "support.list": _rule("global", *_PEOPLE),
    "support.get": _rule("support", *_PEOPLE),
    "ui.public": _rule("public", *ROLES),
    "ui.session": _rule("global", *_PEOPLE),
}
"""Route (``opt["permission"]``) -> scope and the roles allowed."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a valid person token says: who, at which token version, in which session."""

    person_id: int
    version: int
    jti: str | None
    session_id: uuid.UUID | None
    expires_at: int


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Literal["person", "appliance", "anonymous"]
    id: str | None = None
    username: str | None = None
    is_admin: bool = False
    memberships: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Tenant name -> (tenant id, role), for people."""
    appliance: dict[str, Any] | None = None
    """appliance_id, tenant_id, tenant, name, for appliances."""
    claims: AccessClaims | None = None
    """The access token's claims, for people."""

    def global_roles(self) -> set[Role]:
        if self.kind == "anonymous":
            return {"anonymous"}
        if self.kind == "appliance":
            return {"appliance"}
        roles: set[Role] = {role for _, role in self.memberships.values()}  # type: ignore[misc]
        if self.is_admin:
            roles.add("admin")
        return roles

    def role_in_tenant(self, tenant_id: int) -> Role | None:
        if self.kind == "person":
            if self.is_admin:
                return "admin"
            return next((role for tid, role in self.memberships.values()  # type: ignore[misc]
                         if tid == tenant_id), None)
        if self.kind == "appliance" and self.appliance and self.appliance["tenant_id"] == tenant_id:
            return "appliance"
        return None

    @property
    def audit_actor(self) -> tuple[Literal["person", "appliance", "anonymous"], str | None]:
        return self.kind, self.id


ANONYMOUS = Principal(kind="anonymous")
DEFERRED_APPLIANCE = Principal(kind="appliance")
"""An appliance token not looked up yet: only on routes with ``opt[DEFERRED_APPLIANCE_TOKEN]``,
which must resolve it themselves (``appliance`` is None) and answer 401 when it is not live."""
DEFERRED_APPLIANCE_TOKEN = "resolves_appliance_token"  # noqa: S105 (an opt key)


# --- credentials ------------------------------------------------------------------


def issue_person_token(*, secret: str, person_id: int, lifetime: int, version: int = 0,
                       session_id: uuid.UUID | None = None,
                       audience: str = JWT_AUDIENCE) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(person_id), "aud": audience, "iss": JWT_ISSUER, "iat": now, "nbf": now,
        "exp": now + lifetime, "jti": uuid.uuid4().hex, "ver": version}
    if session_id is not None:
        claims["sid"] = str(session_id)
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def decode_person_token(*, secret: str, token: str,
                        audience: str = JWT_AUDIENCE) -> AccessClaims:
    """The claims of a valid token for ``audience`` (the API's, or the console's
    ``UI_AUDIENCE``); ``AuthenticationError`` for anything else."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[JWT_ALGORITHM], audience=audience, issuer=JWT_ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]}, leeway=5,
        )
        found = AccessClaims(
            person_id=int(claims["sub"]), version=int(claims.get("ver", 0)),
            jti=str(claims["jti"])[:64] if claims.get("jti") else None,
            session_id=uuid.UUID(claims["sid"]) if claims.get("sid") else None,
            expires_at=int(claims["exp"]))
    except (jwt.PyJWTError, ValueError, TypeError, AttributeError):
        raise AuthenticationError("invalid or expired token") from None
    if not 0 < found.person_id < INT64_LIMIT:  # no person has it; PostgreSQL could not take it
        raise AuthenticationError("invalid or expired token")
    return found


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, credential = value.partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise AuthenticationError("expected 'Authorization: Bearer <token>'")
    return credential.strip()


class HearthAuthenticationMiddleware(AbstractAuthenticationMiddleware):
    """Turns the Authorization header into a ``Principal`` (anonymous when absent)."""

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        token = _bearer(connection.headers.get("authorization"))
        if token is None:
            return AuthenticationResult(user=ANONYMOUS, auth=None)
        ctx: ApiContext = connection.app.state.ctx
        if token.startswith(appliances.TOKEN_PREFIX):
            handler = connection.scope.get("route_handler")
            deferred = handler is not None and handler.opt.get(DEFERRED_APPLIANCE_TOKEN)
            token_hash = appliances.hash_token(ctx.settings.secret_key, token)
            if deferred and token_hash in ctx.live_tokens:
                # Seen live lately: the route resolves it again inside its own write (one
                # round trip) and answers 401 itself if it was revoked since.
                return AuthenticationResult(user=DEFERRED_APPLIANCE, auth="appliance")
            found = await _lookup_appliance_token(ctx, connection, token)
            if deferred:
                ctx.live_tokens.add(token_hash)
                return AuthenticationResult(user=DEFERRED_APPLIANCE, auth="appliance")
            principal = Principal(kind="appliance", id=str(found["appliance_id"]),
                                  appliance=found)
            return AuthenticationResult(user=principal, auth="appliance")
        claims = decode_person_token(secret=ctx.settings.jwt_secret, token=token)
        principal = await person_principal(ctx, claims)
        if principal is None:
            raise AuthenticationError("invalid or expired token")
        return AuthenticationResult(user=principal, auth="person")


async def person_principal(ctx: ApiContext, claims: AccessClaims) -> Principal | None:
    """The person the claims name, as of now; None when the token no longer holds (the
    person is gone or disabled, the password changed since, the token or its session was
    logged out). One round trip; also what a long-lived stream re-checks."""
    async with ctx.pool.acquire() as conn:
        row = await people.principal_row(conn, claims.person_id, jti=claims.jti,
                                         session_id=claims.session_id)
    if row is None or row["disabled"] or row["revoked"] \
            or row["token_version"] != claims.version:
        return None
    return Principal(
        kind="person", id=str(row["id"]), username=row["username"], is_admin=row["is_admin"],
        memberships={name: (tid, role) for name, (tid, role) in row["roles"].items()},
        claims=claims)


async def _lookup_appliance_token(ctx: ApiContext, connection: ASGIConnection,
                                  token: str) -> dict[str, Any]:
    """The live token's appliance, before any body is read; 401 for an unknown or revoked
    token, counted per client address, and 429 once an address has presented more than
    ``Limits.unknown_tokens_per_minute_per_address`` in the current minute. A live token
    is never refused for its neighbours' mistakes (an office shares one address)."""
    found = await ctx.tokens.resolve(token)
    if found is not None:
        return found
    address = connection.client.host if connection.client else "unknown"
    now = int(time.time())
    async with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.incr(f"hearth:unknown-tokens:{address}:{now // 60}")
        pipe.expire(f"hearth:unknown-tokens:{address}:{now // 60}", 61)
        count, _ = await pipe.execute()
    if count > ctx.limits.unknown_tokens_per_minute_per_address:
        raise RateLimitedError("too many unknown appliance tokens from this address",
                               retry_after=60 - now % 60)
    raise AuthenticationError("unknown or revoked appliance token")


# --- authorization ----------------------------------------------------------------


def _principal(connection: ASGIConnection) -> Principal:
    return connection.scope.get("user") or ANONYMOUS  # type: ignore[return-value]


async def _deny(ctx: ApiContext, principal: Principal, permission: str, *, path: str,
                tenant_id: int | None, reason: str) -> None:
    kind, actor = principal.audit_actor
    # the path is the caller's text: bounded, and without the NUL PostgreSQL cannot store
    target = path.replace("\x00", "\\0")[:300]
    await audit.record(ctx.pool, actor_kind=kind, actor_id=actor, tenant_id=tenant_id,
                       action=f"permission.denied:{permission}", outcome="denied", target=target,
                       details={"reason": reason})


async def authorize(connection: ASGIConnection, handler: BaseRouteHandler) -> None:
    """The guard of every route: look the route up in ``PERMISSIONS`` and apply it.

    On success, scoped routes find ``connection.state.tenant`` (the tenant row)
    and, for appliance scope, ``connection.state.appliance``.
    """
    permission = handler.opt.get("permission")
    rule = PERMISSIONS.get(permission or "")
    if rule is None:  # a route that forgot its entry is closed, not open
        raise PermissionDeniedError("route has no permission rule")
    if rule.scope == "public":
        return
    if any(isinstance(value, int) and not -INT64_LIMIT <= value < INT64_LIMIT
           for value in connection.path_params.values()):
        raise NotFoundError("not found")  # an id no row can have
    principal = _principal(connection)
    ctx: ApiContext = connection.app.state.ctx
    path = connection.url.path
    if principal.kind == "appliance" and "appliance" not in rule.roles:
        raise AuthenticationError("an appliance token is not accepted here")
    if principal.kind == "person" and not rule.roles & set(_PEOPLE):
        raise AuthenticationError("this route takes an appliance token")
    if rule.scope == "global":
        if principal.global_roles() & rule.roles:
            return
        if principal.kind == "anonymous":
            raise AuthenticationError("authentication required")
        await _deny(ctx, principal, permission, path=path, tenant_id=None, reason="role")
        raise PermissionDeniedError("your role does not allow this")

    if principal.kind == "anonymous":
        raise AuthenticationError("authentication required")
    params = connection.path_params
    async with ctx.pool.acquire() as conn:
        if rule.scope == "tenant":
            tenant = await tenants.get_tenant_by_name(conn, params["tenant"])
            target = None
        elif rule.scope == "run":
            tenant = await _run_tenant_or_none(conn, params["run_id"])
            target = None
        elif rule.scope == "support":
            tenant = await support.tenant_of(conn, params["support_id"])
            target = None
        else:
            target = await _appliance_or_none(conn, params["appliance_id"])
            tenant = None if target is None else {"id": target["tenant_id"],
                                                  "name": target["tenant"]}
    role = None if tenant is None else principal.role_in_tenant(tenant["id"])
    if (target is not None and principal.kind == "appliance"
            and str(target["id"]) != principal.id):
        role = None  # an appliance sees only itself
    if role is None:
        # Audited whether or not the tenant exists, with the same row: the work (one
        # lookup, one audit write) and the answer are the same, so neither the timing nor
        # the body tells a tenant one may not see from one that does not exist.
        await _deny(ctx, principal, permission, path=path, tenant_id=None,
                    reason="not-found-or-not-member")
        raise NotFoundError("not found")
    if role not in rule.roles:
        await _deny(ctx, principal, permission, path=path, tenant_id=tenant["id"], reason="role")
        raise PermissionDeniedError(f"role {role!r} may not do this")
    connection.state.tenant = tenant
    connection.state.appliance = target
    connection.state.role = role


async def still_permitted(ctx: ApiContext, principal: Principal, permission: str, *,
                          tenant_id: int) -> bool:
    """Whether ``principal`` may still do ``permission`` in the tenant, as of now: what a
    long-lived stream re-checks (the person disabled, the membership removed or changed,
    the password changed, the session logged out: all end it)."""
    if principal.kind != "person" or principal.claims is None:
        return principal.kind == "appliance"  # appliance tokens are looked up per request
    current = await person_principal(ctx, principal.claims)
    return current is not None and current.role_in_tenant(tenant_id) in \
        PERMISSIONS[permission].roles


async def _run_tenant_or_none(conn: Any, run_id: int) -> dict[str, Any] | None:
    if not 0 < run_id < 2**63:
        return None  # not an id any run can have; the path's own validation names it
    row = await conn.fetchrow(
        "SELECT t.id, t.name FROM reconcile_runs r JOIN tenants t ON t.id = r.tenant_id "
        "WHERE r.id = $1", run_id)
    return dict(row) if row else None


async def _appliance_or_none(conn: Any, appliance_id: Any) -> dict[str, Any] | None:
    try:
        return await appliances.get_appliance(conn, appliance_id)
    except NotFoundError:
        return None


# --- login ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


def _issue(ctx: ApiContext, *, person_id: int, version: int, session_id: uuid.UUID,
           refresh_token: str) -> IssuedTokens:
    lifetime = ctx.limits.jwt_lifetime_seconds
    access = issue_person_token(secret=ctx.settings.jwt_secret, person_id=person_id,
                                lifetime=lifetime, version=version, session_id=session_id)
    return IssuedTokens(access_token=access, expires_in=lifetime, refresh_token=refresh_token,
                        refresh_expires_in=ctx.limits.refresh_lifetime_seconds)


async def _check_password(ctx: ApiContext, *, username: str, password: str,
                          source: str) -> dict[str, Any]:
    """The person's credentials row when ``password`` is theirs; throttled per (username,
    client address) by ``api.throttle``, never locked."""
    verdict = await throttle.check(ctx.redis, ctx.limits, username=username, address=source)
    if not verdict.allowed:
        await audit.record(ctx.pool, actor_kind="anonymous", actor_id=username[:64],
                           action="auth.login", outcome="denied",
                           details={"reason": verdict.reason, "source": source})
        raise RateLimitedError("too many failed logins from this address for this user",
                               retry_after=verdict.retry_after)
    async with ctx.pool.acquire() as conn:
        creds = await people.get_credentials(conn, username)
    ok = people.verify_password(creds["password_hash"] if creds else None, password)
    if not ok or creds is None or creds["disabled"]:
        await throttle.failed(ctx.redis, ctx.limits, username=username, address=source)
        await audit.record(ctx.pool, actor_kind="anonymous", actor_id=username[:64],
                           action="auth.login", outcome="failure", details={"source": source})
        raise AuthenticationError("wrong username or password")
    await throttle.succeeded(ctx.redis, username=username, address=source)
    return dict(creds)


async def login(ctx: ApiContext, *, username: str, password: str, source: str) -> IssuedTokens:
    """Check a password and open a session (a short access token and a refresh token)."""
    creds = await _check_password(ctx, username=username, password=password, source=source)
    async with ctx.pool.acquire() as conn:
        session_id, refresh_token = await sessions.open_session(
            conn, person_id=creds["id"], token_version=creds["token_version"],
            lifetime_seconds=ctx.limits.refresh_lifetime_seconds, source=source,
            secret_key=ctx.settings.secret_key)
    await audit.record(ctx.pool, actor_kind="person", actor_id=str(creds["id"]),
                       action="auth.login", outcome="success", details={"source": source})
    return _issue(ctx, person_id=creds["id"], version=creds["token_version"],
                  session_id=session_id, refresh_token=refresh_token)


async def refresh(ctx: ApiContext, *, refresh_token: str) -> IssuedTokens:
    """A new access token and refresh token for a live session (the old refresh token is
    spent; presenting it again ends the session)."""
    if not refresh_token.startswith(sessions.REFRESH_PREFIX) or len(refresh_token) > 64:
        raise AuthenticationError("invalid or expired refresh token")
    async with ctx.pool.acquire() as conn:
        session, new_token = await sessions.refresh_session(
            conn, token=refresh_token, secret_key=ctx.settings.secret_key)
    if session is None or new_token is None:
        raise AuthenticationError("invalid or expired refresh token")
    return _issue(ctx, person_id=session["person_id"], version=session["token_version"],
                  session_id=session["id"], refresh_token=new_token)


async def logout(ctx: ApiContext, principal: Principal) -> None:
    """End the caller's access token and the session it belongs to."""
    claims = principal.claims
    assert claims is not None  # the guard admits people only
    async with ctx.pool.acquire() as conn, conn.transaction():
        await sessions.end_session(
            conn, session_id=claims.session_id, jti=claims.jti, person_id=claims.person_id,
            expires_at=datetime.fromtimestamp(claims.expires_at, UTC))
        await audit.record(conn, actor_kind="person", actor_id=principal.id,
                           action="auth.logout", outcome="success",
                           details={"session": str(claims.session_id or "")})


async def console_login(ctx: ApiContext, *, username: str, password: str, source: str,
                        lifetime: int) -> tuple[str, int]:
    """Check a password (throttled like ``login``) and issue a console session token
    (``UI_AUDIENCE``, carrying the person's token version, so a password change or a disable
    ends it like an API token)."""
    creds = await _check_password(ctx, username=username, password=password, source=source)
    token = issue_person_token(secret=ctx.settings.jwt_secret, person_id=creds["id"],
                               lifetime=lifetime, version=creds["token_version"],
                               audience=UI_AUDIENCE)
    await audit.record(ctx.pool, actor_kind="person", actor_id=str(creds["id"]),
                       action="auth.login", outcome="success",
                       details={"source": source, "audience": UI_AUDIENCE})
    return token, lifetime
