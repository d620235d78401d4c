"""Reconcile from the API: manual syncs (and dry runs), live diffs, and runs with their events.

A sync request is stored as a ``queued`` run row before the queue hint is
added, so it survives a Redis flush (the resync re-adds queued requests); the
worker that takes the appliance claims it. ``/runs/{id}/events`` streams the
run's event log as server-sent events: what is stored first, then new events
as the worker writes them, then one ``end`` event when the run is finished.
A stream re-checks its caller every ``Limits.stream_recheck_seconds`` (one
query: disabled, membership gone, password changed or logged out end it with
an ``end`` event whose status is ``access-ended``), sends a keepalive comment
when idle for ``Limits.stream_keepalive_seconds``, and closes after
``Limits.stream_max_seconds`` (``end`` with status ``reconnect``; the client
resumes with ``after=`` the last id it saw).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from litestar import get, post
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal, still_permitted
from api.context import ApiContext
from api.deps import ApplianceRow, Caller, Conn, Ctx, TenantRow
from api.errors import problem_responses
from engine.db import audit
from engine.db import runs as run_db
from schemas.plan import Plan

_ERRORS = problem_responses(401, 403, 404)
_FINISHED = {"succeeded", "failed", "interrupted"}


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    dry_run: bool = False
    """Run Ansible in check mode with diff: nothing on the appliance changes."""


class SyncAccepted(BaseModel):
    run_id: int
    dry_run: bool
    status: str = "queued"


class RunOut(BaseModel):
    id: int
    tenant: str
    appliances: list[uuid.UUID]
    revision: str
    status: str
    check_mode: bool
    trigger: str
    changed: int
    failed: int
    error: str | None
    plan: dict[str, Any]
    results: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunEventOut(BaseModel):
    seq: int
    host: str | None
    event: str
    data: dict[str, Any] = Field(default_factory=dict)
    at: datetime


@post("/api/v1/appliances/{appliance_id:uuid}/sync", opt={"permission": "appliances.sync"},
      tags=["reconcile"], status_code=202, responses=_ERRORS,
      summary="Reconcile the appliance now (dry_run: Ansible check mode with diff)")
async def request_sync(appliance_id: FromPath[uuid.UUID], data: JSONBody[SyncRequest], conn: Conn,
                       ctx: Ctx, principal: Caller, appliance_row: ApplianceRow) -> SyncAccepted:
    run_id = await queue_sync(conn, ctx, principal=principal, appliance_row=appliance_row,
                              dry_run=data.dry_run)
    return SyncAccepted(run_id=run_id, dry_run=data.dry_run)


async def queue_sync(conn: asyncpg.Connection, ctx: ApiContext, *, principal: Principal,
                     appliance_row: dict[str, Any], dry_run: bool) -> int:
    """Store a queued manual run, audit it and queue the appliance (the API and the
    console both call this); the run's id."""
    revision = await ctx.revision(appliance_row["tenant"]) or ""
    run_id = await run_db.create_run(
        conn, tenant_id=appliance_row["tenant_id"], appliance_ids=[appliance_row["id"]],
        revision=revision, plan={}, check_mode=dry_run, trigger="manual",
        worker_id=None, status="queued")
    await audit.record(conn, actor_kind="person", actor_id=principal.id,
                       tenant_id=appliance_row["tenant_id"], action="appliance.sync",
                       outcome="success", target=f"appliance:{appliance_row['id']}",
                       details={"run_id": run_id, "dry_run": dry_run})
    await ctx.queue.add(f"{appliance_row['tenant']}/{appliance_row['name']}")
    return run_id


@get("/api/v1/appliances/{appliance_id:uuid}/diff", opt={"permission": "appliances.diff"},
     tags=["reconcile"], responses=problem_responses(401, 403, 404, 409),
     summary="The plan: what a sync would change, from the latest heartbeat")
async def get_diff(appliance_id: FromPath[uuid.UUID], conn: Conn, ctx: Ctx,
                   appliance_row: ApplianceRow) -> Plan:
    return await ctx.source.preview_plan(conn, tenant=appliance_row["tenant"],
                                         appliance=appliance_row["name"])


@get("/api/v1/appliances/{appliance_id:uuid}/runs", opt={"permission": "appliances.runs"},
     tags=["reconcile"], responses=_ERRORS, summary="The appliance's latest runs")
async def list_runs(appliance_id: FromPath[uuid.UUID], conn: Conn,
                    limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20) -> list[RunOut]:
    return [RunOut.model_validate(r) for r in
            await run_db.runs_of_appliance(conn, appliance_id, limit=limit)]


@get("/api/v1/runs/{run_id:int}", opt={"permission": "runs.get"}, tags=["reconcile"],
     responses=_ERRORS, summary="One run: plan, per-host results, counts, timing")
async def get_run(run_id: Annotated[int, PathParameter(ge=1, le=2**62)], conn: Conn) -> RunOut:
    return RunOut.model_validate(await run_db.get_run(conn, run_id))


@get("/api/v1/runs/{run_id:int}/events", opt={"permission": "runs.events"}, tags=["reconcile"],
     responses=_ERRORS, media_type="text/event-stream",
     summary="The run's events as server-sent events, live until it ends")
async def run_events(run_id: Annotated[int, PathParameter(ge=1, le=2**62)], ctx: Ctx,
                     principal: Caller, tenant_row: TenantRow,
                     after: Annotated[int, QueryParameter(ge=-1, le=2**31)] = -1
                     ) -> ServerSentEvent:
    async with ctx.pool.acquire() as conn:
        await run_db.get_run(conn, run_id)  # 404 before the stream starts
    return ServerSentEvent(event_stream(ctx, run_id, after=after, principal=principal,
                                        tenant_id=tenant_row["id"]))


async def event_stream(ctx: ApiContext, run_id: int, *, after: int, principal: Principal,
                       tenant_id: int) -> AsyncIterator[ServerSentEventMessage]:
    """The run's events after ``after``, live until the run ends, then one ``end`` event
    (the API's and the console's stream). Every ``stream_recheck_seconds`` the caller's
    access is checked again (a removed membership, a disabled person or a changed password
    ends the stream with status ``access-ended``); a quiet stream gets a keepalive comment;
    a stream ends after ``stream_max_seconds`` with status ``reconnect``."""
    limits = ctx.limits

    def end(status: str) -> ServerSentEventMessage:
        return ServerSentEventMessage(data=json.dumps({"event": "end", "status": status}),
                                      event="end")

    last = after
    started = checked = quiet_since = time.monotonic()
    while True:
        now = time.monotonic()
        if now - checked >= limits.stream_recheck_seconds:
            checked = now
            if not await still_permitted(ctx, principal, "runs.events", tenant_id=tenant_id):
                yield end("access-ended")
                return
        if now - started >= limits.stream_max_seconds:
            yield end("reconnect")
            return
        async with ctx.pool.acquire() as conn:
            events = await run_db.events_after(conn, run_id, after=last)
            run = await run_db.get_run(conn, run_id)
        for event in events:
            last = event["seq"]
            yield ServerSentEventMessage(data=json.dumps(event["data"], default=str),
                                         event="event", id=str(last))
        if events:
            quiet_since = time.monotonic()
            continue
        if run["status"] in _FINISHED:
            yield end(run["status"])
            return
        if time.monotonic() - quiet_since >= limits.stream_keepalive_seconds:
            quiet_since = time.monotonic()
            yield ServerSentEventMessage(comment="keepalive", data=None)
        await asyncio.sleep(min(0.5, limits.stream_recheck_seconds,
                                limits.stream_keepalive_seconds))


ROUTES = [request_sync, get_diff, list_runs, get_run, run_events]
