"""Console pages of history and audit: commits of ``main`` filtered by path or appliance,
and the audit timeline (request -> pull request -> approvers -> merge -> runs ->
confirming heartbeat, then audit events) with filters and a JSON Lines download.

The same reads as ``api.routes.history`` (``engine.audit.history``,
``engine.audit.chain``) under the same permissions (``history.list``,
``audit.list``); the download is the API's JSON Lines, one object a line.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
from litestar import Request, get
from litestar.params import FromPath, QueryParameter
from litestar.response import Stream, Template

from api.context import ApiContext
from api.ui.web import UI, page
from engine.audit import chain
from engine.audit.history import history

_LIMIT = 1000


@get(f"{UI}/tenants/{{tenant:str}}/history", opt={"permission": "history.list"})
async def history_page(
    request: Request, tenant: FromPath[str],
    path: Annotated[str | None, QueryParameter(max_length=300)] = None,
    appliance: Annotated[str | None, QueryParameter(max_length=63)] = None,
) -> Template:
    ctx: ApiContext = request.app.state.ctx
    name = request.state.tenant["name"]
    store = ctx.source.store

    def read() -> list[dict[str, Any]]:
        head = store.head(name)
        return [] if head is None else history(store.open(name), head, path=path or None,
                                               appliance=appliance or None, limit=200)

    commits = await anyio.to_thread.run_sync(read)
    return page(request, "history.html", tenant=name, commits=commits,
                chosen={"path": path or "", "appliance": appliance or ""})


async def _audit(request: Request) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ctx: ApiContext = request.app.state.ctx
    async with ctx.pool.acquire() as conn:
        found = await chain.changes(conn, tenant_id=request.state.tenant["id"], limit=_LIMIT)
        events = await chain.events(conn, tenant_id=request.state.tenant["id"], limit=_LIMIT)
    return found, events


def _matches(event: dict[str, Any], text: str, outcome: str) -> bool:
    haystack = " ".join(str(event.get(k) or "") for k in ("action", "target", "actor_id"))
    return (not text or text.lower() in haystack.lower()) and \
        (not outcome or event.get("outcome") == outcome)


@get(f"{UI}/tenants/{{tenant:str}}/audit", opt={"permission": "audit.list"})
async def audit_page(
    request: Request, tenant: FromPath[str],
    q: Annotated[str | None, QueryParameter(max_length=100)] = None,
    outcome: Annotated[str | None, QueryParameter(max_length=20)] = None,
) -> Template:
    found, events = await _audit(request)
    shown = [e for e in events if _matches(e, q or "", outcome or "")]
    return page(request, "audit.html", tenant=request.state.tenant["name"], changes=found,
                events=shown, total=len(events), chosen={"q": q or "", "outcome": outcome or ""})


@get(f"{UI}/tenants/{{tenant:str}}/audit.jsonl", opt={"permission": "audit.list"})
async def audit_export(request: Request, tenant: FromPath[str]) -> Stream:
    found, events = await _audit(request)

    async def lines() -> AsyncIterator[bytes]:
        for item in found:
            yield (json.dumps({"type": "change", **item}, default=str) + "\n").encode()
        for event in events:
            yield (json.dumps({"type": "event", **event}, default=str) + "\n").encode()

    filename = f"hearth-audit-{request.state.tenant['name']}.jsonl"
    return Stream(lines(), headers={
        "Content-Type": "application/x-ndjson",
        "Content-Disposition": f'attachment; filename="{filename}"'})


ROUTES = [history_page, audit_page, audit_export]
