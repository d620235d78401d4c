"""Console pages of the fleet: every appliance at a glance, one appliance, one run, and the
customer's page of their own tenant.

Each handler reads through the services the API's handlers use
(``engine.db.appliances.status_rows``, ``api.status_view``,
``DesiredSource.preview_plan``, ``api.routes.runs.queue_sync`` and
``event_stream``), under the API's permission names.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio.to_thread
import pygit2
from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, PathParameter, QueryParameter
from litestar.response import Redirect, ServerSentEvent, Template
from pydantic import BaseModel

from api.context import ApiContext
from api.routes.runs import event_stream, queue_sync
from api.status_view import appliance_view
from api.ui.web import UI, can, in_words, page, principal_of
from engine.audit.history import history
from engine.db import appliances, tenants
from engine.db import runs as run_db
from engine.errors import ConfigError, HearthError
from schemas.pulls import PullOut

RunId = Annotated[int, PathParameter(ge=1, le=2**62)]


def _ctx(request: Request) -> ApiContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def _sites(ctx: ApiContext, tenant: str, revision: str | None) -> dict[str, str]:
    """Appliance name -> site, from desired state at ``revision`` (blocking)."""
    if revision is None:
        return {}
    try:
        snapshot = ctx.source.load(tenant, revision)
    except (ConfigError, HearthError, pygit2.GitError):
        return {}
    return {name: doc.spec.site for name, doc in snapshot.config.appliances.items()}


@get(f"{UI}/fleet", opt={"permission": "tenants.list"})
async def fleet(
    request: Request,
    tenant: Annotated[str | None, QueryParameter(max_length=63)] = None,
    status: Annotated[str | None, QueryParameter(max_length=20)] = None,
    site: Annotated[str | None, QueryParameter(max_length=200)] = None,
) -> Template:
    """Every appliance of the tenants whose appliances the person may list
    (``tenants.appliances``), filtered by tenant, status (sync or health) and site."""
    started = time.perf_counter()
    ctx = _ctx(request)
    principal = principal_of(request)
    now = datetime.now(UTC)
    only = None if principal.is_admin else [tid for tid, _ in principal.memberships.values()]
    async with ctx.pool.acquire() as conn:
        visible = [t for t in await tenants.list_tenants(conn, only_ids=only)
                   if can(principal.role_in_tenant(t["id"]), "tenants.appliances")]
        rows: list[dict[str, Any]] = []
        all_sites: set[str] = set()
        for t in visible:
            if tenant and t["name"] != tenant:
                continue
            desired = await ctx.revision(t["name"])
            sites = await anyio.to_thread.run_sync(_sites, ctx, t["name"], desired)
            all_sites.update(s for s in sites.values() if s)
            role = principal.role_in_tenant(t["id"])
            error = await ctx.source.head_error(t["name"])
            for row in await appliances.status_rows(conn, tenant_id=t["id"]):
                view = appliance_view(row, source=ctx.source, desired_revision=desired,
                                      source_error=error, now=now,
                                      heartbeat_interval=ctx.settings.heartbeat_interval)
                rows.append({"view": view, "site": sites.get(view.name, ""), "role": role})
    counts = Counter()
    for r in rows:
        counts[r["view"].status.sync.value] += 1
        counts[r["view"].status.health.value] += 1
    shown = [r for r in rows
             if (not status or status in (r["view"].status.sync.value,
                                          r["view"].status.health.value))
             and (not site or r["site"] == site)]
    return page(request, "fleet.html", rows=shown, total=len(rows), counts=counts,
                tenants=[t["name"] for t in visible], sites=sorted(all_sites),
                chosen={"tenant": tenant or "", "status": status or "", "site": site or ""},
                now=now, render_ms=round((time.perf_counter() - started) * 1000, 1))


@get(f"{UI}/appliances/{{appliance_id:uuid}}", opt={"permission": "appliances.get"})
async def appliance_page(request: Request, appliance_id: FromPath[uuid.UUID]) -> Template:
    ctx = _ctx(request)
    role = request.state.role
    target = request.state.appliance
    tenant = target["tenant"]
    desired = await ctx.revision(tenant)
    plan = plan_error = None
    runs: list[dict[str, Any]] = []
    commits: list[dict[str, Any]] = []
    async with ctx.pool.acquire() as conn:
        row = await appliances.status_row(conn, appliance_id)
        if can(role, "appliances.diff"):
            try:
                plan = await ctx.source.preview_plan(conn, tenant=tenant, appliance=target["name"])
            except HearthError as exc:
                plan_error = str(exc)
        if can(role, "appliances.runs"):
            runs = await run_db.runs_of_appliance(conn, appliance_id, limit=20)
    if can(role, "history.list"):
        store = ctx.source.store

        def read() -> list[dict[str, Any]]:
            head = store.head(tenant)
            return [] if head is None else history(store.open(tenant), head,
                                                   appliance=target["name"], limit=20)

        commits = await anyio.to_thread.run_sync(read)
    view = appliance_view(row, source=ctx.source, desired_revision=desired,
                          source_error=await ctx.source.head_error(tenant),
                          now=datetime.now(UTC), heartbeat_interval=ctx.settings.heartbeat_interval)
    return page(request, "appliance.html", a=view, role=role, plan=plan, plan_error=plan_error,
                runs=runs, commits=commits, words=in_words(view.status.sync.value,
                                                            view.status.health.value),
                can_sync=can(role, "appliances.sync"), can_runs=can(role, "appliances.runs"),
                can_diff=can(role, "appliances.diff"), can_history=can(role, "history.list"))


class SyncForm(BaseModel):
    dry_run: bool = False


@post(f"{UI}/appliances/{{appliance_id:uuid}}/sync", opt={"permission": "appliances.sync"},
      status_code=303)
async def sync(request: Request, appliance_id: FromPath[uuid.UUID],
               data: Annotated[SyncForm, Body(media_type=RequestEncodingType.URL_ENCODED)]
               ) -> Redirect:
    ctx = _ctx(request)
    async with ctx.pool.acquire() as conn:
        run_id = await queue_sync(conn, ctx, principal=principal_of(request),
                                  appliance_row=request.state.appliance, dry_run=data.dry_run)
    return Redirect(f"{UI}/runs/{run_id}", status_code=303)


@get(f"{UI}/runs/{{run_id:int}}", opt={"permission": "runs.get"})
async def run_page(request: Request, run_id: RunId) -> Template:
    ctx = _ctx(request)
    async with ctx.pool.acquire() as conn:
        run = await run_db.get_run(conn, run_id)
        events = await run_db.events_after(conn, run_id, after=-1)
        names = {str(r["id"]): r["name"] for r in await appliances.status_rows(
            conn, tenant_id=run["tenant_id"])}
    return page(request, "run.html", run=run, events=events,
                appliances=[(str(a), names.get(str(a), str(a))) for a in run["appliances"]],
                live=run["status"] not in ("succeeded", "failed", "interrupted"),
                last_seq=events[-1]["seq"] if events else -1)


@get(f"{UI}/runs/{{run_id:int}}/events", opt={"permission": "runs.events"},
     media_type="text/event-stream")
async def run_events(request: Request, run_id: RunId,
                     after: Annotated[int, QueryParameter(ge=-1, le=2**31)] = -1
                     ) -> ServerSentEvent:
    """The API's event stream of the run, for the page's ``EventSource`` (which cannot send
    a bearer token, so it comes here with the session cookie)."""
    ctx = _ctx(request)
    async with ctx.pool.acquire() as conn:
        await run_db.get_run(conn, run_id)
    return ServerSentEvent(event_stream(ctx, run_id, after=after,
                                        principal=principal_of(request),
                                        tenant_id=request.state.tenant["id"]))


def _applied(ctx: ApiContext, tenant: str, merge: str | None, applied: list[str | None]
             ) -> bool:
    """Whether every appliance's applied revision contains ``merge`` (blocking)."""
    if not merge or not applied:
        return False
    repo = ctx.source.store.open(tenant)
    try:
        return all(rev is not None and (rev == merge or repo.descendant_of(rev, merge))
                   for rev in applied)
    except (pygit2.GitError, ValueError, KeyError):
        return False


def pull_in_words(pull: PullOut, applied: bool) -> str:
    """A pull request's state as a customer reads it."""
    if pull.state == "closed":
        return "Not going ahead (closed)"
    if pull.state == "merged":
        return "Applied on your server" if applied else "Approved; being applied to your server"
    if pull.mergeable == "checks_failing":
        return "Needs a correction by your operator"
    return "Waiting for your operator's review"


async def pulls_with_words(ctx: ApiContext, tenant_row: dict[str, Any],
                           views: dict[str, Any], limit: int = 10) -> list[dict[str, Any]]:
    """Recent pull requests with their state in words; 'applied' once every appliance the
    preview named reports a revision containing the merge."""
    assert ctx.pulls is not None
    out = []
    for pull in (await ctx.pulls.list(tenant_row, state=None))[:limit]:
        names = [p.appliance for p in pull.checks.plan_preview.appliances] or list(views)
        applied = await anyio.to_thread.run_sync(
            _applied, ctx, tenant_row["name"], pull.merge_commit,
            [views[n].status.applied_revision if n in views else None for n in names])
        out.append({"pull": pull, "words": pull_in_words(pull, applied), "applied": applied})
    return out


@get(f"{UI}/tenants/{{tenant:str}}", opt={"permission": "tenants.get"})
async def tenant_page(request: Request, tenant: FromPath[str]) -> Template:
    """The customer's page: their servers and their requests in plain words."""
    ctx = _ctx(request)
    tenant_row = request.state.tenant
    role = request.state.role
    desired = await ctx.revision(tenant_row["name"])
    now = datetime.now(UTC)
    async with ctx.pool.acquire() as conn:
        row = await tenants.get_tenant_by_name(conn, tenant_row["name"])
        views = {}
        if can(role, "tenants.appliances"):
            error = await ctx.source.head_error(tenant_row["name"])
            for r in await appliances.status_rows(conn, tenant_id=tenant_row["id"]):
                v = appliance_view(r, source=ctx.source, desired_revision=desired,
                                   source_error=error, now=now,
                                   heartbeat_interval=ctx.settings.heartbeat_interval)
                views[v.name] = v
    pulls = await pulls_with_words(ctx, tenant_row, views) if can(role, "pulls.list") else []
    return page(request, "tenant.html", tenant=row, role=role, appliances=list(views.values()),
                words={n: in_words(v.status.sync.value, v.status.health.value)
                       for n, v in views.items()},
                pulls=pulls, can_pulls=can(role, "pulls.list"),
                can_audit=can(role, "audit.list"), can_history=can(role, "history.list"))


ROUTES = [fleet, appliance_page, sync, run_page, run_events, tenant_page]
