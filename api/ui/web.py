"""What every console page shares: the permission question, page rendering, error pages.

The console has no rules of its own. A page or form names an entry of
``api.auth.PERMISSIONS`` in ``opt["permission"]`` and the API's guard
(``api.auth.authorize``) decides, with the same tenant scoping (a tenant or
appliance the person has no role in is a 404). What a page *shows* inside
that (a Sync button, the diff, the audit link) is asked of the same table
with ``can(role, permission)``, never decided here.

Errors on console routes become HTML pages that reveal nothing beyond their
status: 401 sends a browser to the login page, 403 and 404 are bare pages,
a refused action (409, 400, 422) says why in the API's own words.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.response import Redirect, Template

from api.auth import ANONYMOUS, PERMISSIONS, Principal
from api.errors import PROBLEMS, internal_error_handler
from engine.errors import (
    AuthenticationError,
    HearthError,
    NotFoundError,
    PermissionDeniedError,
)

UI = "/ui"


def can(role: str | None, permission: str) -> bool:
    """Whether ``role`` (the person's role in the tenant at hand) may do ``permission``,
    as the API's table says."""
    return role is not None and role in PERMISSIONS[permission].roles


def principal_of(request: Request) -> Principal:
    return request.scope.get("user") or ANONYMOUS  # type: ignore[return-value]


def role_in(principal: Principal, tenant_id: int) -> str | None:
    return principal.role_in_tenant(tenant_id)


def page(request: Request, name: str, *, status: int = 200, **context: Any) -> Template:
    """A full HTML page: ``name`` from ``api/ui/templates`` with the person and the
    navigation the base template needs."""
    principal = principal_of(request)
    return Template(template_name=name, status_code=status, context={
        "me": principal if principal.kind == "person" else None,
        "nav": navigation(principal), "path": request.url.path, **context})


def navigation(principal: Principal) -> list[tuple[str, str]]:
    """Links of the top bar: only to pages the person's roles can open."""
    if principal.kind != "person":
        return []
    roles = principal.global_roles()
    links: list[tuple[str, str]] = []
    if roles - {"customer"}:
        links.append(("Fleet", f"{UI}/fleet"))
    for tenant, (_, role) in sorted(principal.memberships.items()):
        if role == "customer":
            links.append((tenant.title(), f"{UI}/tenants/{tenant}"))
    links.append(("Tokens", f"{UI}/tokens"))
    return links


def age(when: datetime | None, *, now: datetime | None = None) -> str:
    """'12 s ago', '5 min ago', '3 h ago', '2 d ago'; 'never' for None."""
    if when is None:
        return "never"
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    if seconds < 0:
        return "just now"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


BADGES = {"Synced": "ok", "Healthy": "ok", "True": "ok", "passed": "ok", "succeeded": "ok",
          "merged": "ok", "clean": "ok", "approve": "ok",
          "OutOfSync": "warn", "Progressing": "warn", "pending": "warn", "running": "warn",
          "queued": "warn", "open": "warn", "checks_pending": "warn", "needs_approval": "warn",
          "Degraded": "bad", "failed": "bad", "False": "bad", "checks_failing": "bad",
          "conflicted": "bad", "interrupted": "bad", "request_changes": "bad",
          "denied": "bad", "failure": "bad"}
"""Status text -> badge colour class; anything else is neutral. The text is always shown
too (colour is never the only signal)."""


def badge_class(value: object) -> str:
    return BADGES.get(str(value), "neutral")


def in_words(sync: str, health: str) -> str:
    """An appliance's status as a customer reads it."""
    if health == "Missing":
        return ("Not connected yet" if sync == "Unknown"
                else "Not reachable: it has not reported in for a while")
    if health == "Degraded":
        return "Something is not working; your operator can see what"
    if sync == "OutOfSync" or health == "Progressing":
        return "Changes are being applied"
    if sync == "Synced" and health == "Healthy":
        return "Working normally and up to date"
    return "Status not known yet"


# --- error pages -----------------------------------------------------------------------

_TITLES = {400: "That request was not understood", 401: "Please log in",
           403: "Not allowed", 404: "Not found", 405: "Not allowed", 409: "Not possible now",
           413: "Too large", 422: "Not valid", 429: "Too many requests"}


def _error_page(request: Request, status: int, detail: str = "") -> Response[Any]:
    if status == 401 and request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return Redirect(f"{UI}/login?next={quote(target, safe='')}", status_code=303)
    # 403 and 404 say nothing about what exists or why: the same page for every cause.
    shown = "" if status in (401, 403, 404) or status >= 500 else detail
    title = _TITLES.get(status, "Something went wrong")
    return page(request, "error.html", status=status, title=title, status_code=status,
                detail=shown)


def hearth_error(request: Request, exc: HearthError) -> Response[Any]:
    if isinstance(exc, AuthenticationError):
        return _error_page(request, 401)
    if isinstance(exc, NotFoundError):
        return _error_page(request, 404)
    if isinstance(exc, PermissionDeniedError):
        return _error_page(request, 403)
    status = next((PROBLEMS[c][0] for c in type(exc).__mro__ if c in PROBLEMS), 500)
    return _error_page(request, status, str(exc))


def http_error(request: Request, exc: HTTPException) -> Response[Any]:
    detail = "the form was not filled in as expected" if exc.status_code == 400 else ""
    return _error_page(request, exc.status_code, detail)


def unexpected_error(request: Request, exc: Exception) -> Response[Any]:
    internal_error_handler(request, exc)  # logs it with the request id
    return _error_page(request, 500)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    HearthError: hearth_error, HTTPException: http_error, Exception: unexpected_error}
