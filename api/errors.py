"""The one place where errors become RFC 9457 problem details.

Every error a client can see leaves as ``application/problem+json`` with
``type``, ``title``, ``status`` and ``detail``: Hearth's own classes
(``engine.errors``) by the table ``PROBLEMS``, Litestar's HTTP exceptions
(validation, 404, 405, 413, 429) by their status, and anything unexpected as
a bare 500 whose detail says nothing about the internals (the traceback goes
to the log with the request id).
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from pydantic import BaseModel

from engine.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    ExecutionError,
    HearthError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RevisionError,
    SettingsError,
)

log = logging.getLogger("hearth.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE_BASE = "https://hearth.dev/problems/"

PROBLEMS: dict[type[HearthError], tuple[int, str]] = {
    NotFoundError: (404, "not-found"),
    ConflictError: (409, "conflict"),
    PermissionDeniedError: (403, "forbidden"),
    AuthenticationError: (401, "unauthenticated"),
    InvalidInputError: (400, "invalid-input"),
    RevisionError: (400, "invalid-revision"),
    ConfigError: (422, "invalid-config"),
    RateLimitedError: (429, "rate-limited"),
    ExecutionError: (503, "execution-unavailable"),
    SettingsError: (500, "misconfigured"),
}

_HTTP_TYPES = {400: "invalid-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
               405: "method-not-allowed", 409: "conflict", 413: "body-too-large",
               415: "unsupported-media-type", 429: "rate-limited"}


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str = ""
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
    """Per-field faults of an invalid request or config (never secrets)."""


def problem_response(
    request: Request, *, status: int, slug: str, detail: str,
    headers: dict[str, str] | None = None, errors: list[dict[str, Any]] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": _TYPE_BASE + slug, "title": slug.replace("-", " ").capitalize(),
        "status": status, "detail": detail, "instance": request.url.path,
    }
    if errors is not None:
        body["errors"] = errors
    return Response(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _slug_and_status(exc: HearthError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in PROBLEMS:
            return PROBLEMS[cls]  # type: ignore[index]
    return 500, "internal-error"


def hearth_error_handler(request: Request, exc: HearthError) -> Response[dict[str, Any]]:
    status, slug = _slug_and_status(exc)
    headers: dict[str, str] = {}
    errors = None
    if isinstance(exc, AuthenticationError):
        headers["WWW-Authenticate"] = 'Bearer realm="hearth"'
    if isinstance(exc, RateLimitedError):
        headers["Retry-After"] = str(max(1, exc.retry_after))
    if isinstance(exc, ConfigError):
        errors = [i.as_dict() for i in exc.issues]
    detail = str(exc) if status < 500 else "the server could not complete the request"
    if status >= 500:
        log.error("request failed", exc_info=exc)
    return problem_response(request, status=status, slug=slug, detail=detail,
                            headers=headers or None, errors=errors)


def http_exception_handler(request: Request, exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    errors = None
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        errors = [_clean_validation_error(e) for e in exc.extra]
    detail = exc.detail if status < 500 else "the server could not complete the request"
    if status >= 500:
        log.error("request failed", exc_info=exc)
    headers = dict(exc.headers or {})
    if status == 429 and "Retry-After" not in headers:
        headers["Retry-After"] = headers.get("RateLimit-Reset", "1")
    return problem_response(request, status=status, slug=_HTTP_TYPES.get(status, "http-error"),
                            detail=str(detail), headers=headers or None, errors=errors)


def _clean_validation_error(error: Any) -> dict[str, Any]:
    """Keep where and why; never echo the offending value (it may be a password)."""
    if not isinstance(error, dict):
        return {"message": str(error)[:300]}
    return {"key": str(error.get("key", ""))[:200], "source": str(error.get("source", "")),
            "message": str(error.get("message", ""))[:300]}


def text_error_handler(request: Request, exc: asyncpg.DataError) -> Response[dict[str, Any]]:
    """Text PostgreSQL cannot hold (a NUL character, an invalid escape) that slipped past a
    model reached a query: the statement failed, so nothing was stored; it is the caller's
    input, so 400, never 500."""
    log.info("request text refused by the database: %s", type(exc).__name__)
    return problem_response(request, status=400, slug="invalid-request",
                            detail="a value contains a character that cannot be stored "
                                   "(such as NUL)")


def internal_error_handler(request: Request, exc: Exception) -> Response[dict[str, Any]]:
    log.error("unhandled error", exc_info=exc)
    return problem_response(request, status=500, slug="internal-error",
                            detail="the server could not complete the request")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    HearthError: hearth_error_handler,
    HTTPException: http_exception_handler,
    asyncpg.CharacterNotInRepertoireError: text_error_handler,
    asyncpg.UntranslatableCharacterError: text_error_handler,
    Exception: internal_error_handler,
}


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries documenting the problem responses a route may give (400 always:
    it replaces Litestar's default entry, which names application/json)."""
    return {
        status: ResponseSpec(data_container=Problem, media_type=PROBLEM_MEDIA_TYPE,
                             description=_HTTP_TYPES.get(status, "error").replace("-", " "))
        for status in sorted({400, *statuses})
    }
