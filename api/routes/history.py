"""History and audit of a tenant: read-only, for operators and auditors.

``GET …/history`` lists commits of ``main`` (author, trailers, changed paths),
filtered by ``path`` or ``appliance``. ``GET …/audit`` gives the audit chain
(``engine.audit.chain``) and audit events; ``?format=jsonl`` streams the same
as JSON Lines, one ``{"type": "change"|"event", ...}`` object per line, for
export.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
from litestar import get
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream
from pydantic import BaseModel

from api.deps import Ctx, TenantRow
from api.errors import problem_responses
from engine.audit import chain
from engine.audit.history import history
from engine.repos.store import RepoStore

_ERRORS = problem_responses(401, 403, 404)


class CommitOut(BaseModel):
    commit: str
    parents: list[str]
    author: str
    author_email: str
    committed_at: datetime
    subject: str
    message: str
    trailers: dict[str, list[str]]
    paths: list[str]


class AuditOut(BaseModel):
    changes: list[dict[str, Any]]
    events: list[dict[str, Any]]


@get("/api/v1/tenants/{tenant:str}/history", opt={"permission": "history.list"},
     tags=["audit"], responses=_ERRORS, summary="Commits of main: author, trailers, paths")
async def list_history(
    tenant: FromPath[str], ctx: Ctx, tenant_row: TenantRow,
    path: Annotated[str | None, QueryParameter(max_length=300)] = None,
    appliance: Annotated[str | None, QueryParameter(max_length=63)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> list[CommitOut]:
    store = RepoStore(ctx.settings.repos_dir)

    def read() -> list[dict[str, Any]]:
        head = store.head(tenant_row["name"])
        return [] if head is None else history(store.open(tenant_row["name"]), head, path=path,
                                               appliance=appliance, limit=limit)

    return [CommitOut(**c) for c in await anyio.to_thread.run_sync(read)]


@get("/api/v1/tenants/{tenant:str}/audit", opt={"permission": "audit.list"}, tags=["audit"],
     responses=_ERRORS, summary="The audit chain and audit events (format=jsonl streams)")
async def get_audit(
    tenant: FromPath[str], ctx: Ctx, tenant_row: TenantRow,
    output: Annotated[Literal["json", "jsonl"], QueryParameter(name="format")] = "json",
    limit: Annotated[int, QueryParameter(ge=1, le=10_000)] = 1000,
) -> AuditOut | Stream:
    async with ctx.pool.acquire() as conn:
        found = await chain.changes(conn, tenant_id=tenant_row["id"], limit=limit)
        events = await chain.events(conn, tenant_id=tenant_row["id"], limit=limit)
    if output == "json":
        return AuditOut(changes=found, events=events)

    async def lines() -> AsyncIterator[bytes]:
        for item in found:
            yield (json.dumps({"type": "change", **item}, default=str) + "\n").encode()
        for event in events:
            yield (json.dumps({"type": "event", **event}, default=str) + "\n").encode()

    return Stream(lines(), headers={"Content-Type": "application/x-ndjson"})


ROUTES = [list_history, get_audit]
