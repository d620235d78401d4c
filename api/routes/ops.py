"""Operations endpoints: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

import os
from typing import Any

import anyio.to_thread
from litestar import get
from litestar.plugins.prometheus import PrometheusController

from api.deps import Ctx
from api.errors import problem_responses
from engine.errors import ExecutionError
from engine.reconcile.liveness import fleet_liveness


@get("/health", opt={"permission": "health"}, tags=["operations"], summary="Process is alive")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/ready", opt={"permission": "ready"}, tags=["operations"],
     summary="PostgreSQL, Redis and the repo volume are reachable; whether a worker is alive",
     responses=problem_responses(503))
async def ready(ctx: Ctx) -> dict[str, Any]:
    checks: dict[str, str] = {}
    try:
        async with ctx.pool.acquire(timeout=2) as conn:
            await conn.fetchval("SELECT 1")
        checks["postgresql"] = "ok"
    except Exception as exc:
        checks["postgresql"] = type(exc).__name__
    try:
        await ctx.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = type(exc).__name__
    repos = ctx.settings.repos_dir
    ok = await anyio.to_thread.run_sync(lambda: repos.is_dir() and os.access(repos, os.W_OK))
    checks["repos"] = "ok" if ok else "missing or not writable"
    if any(v != "ok" for v in checks.values()):
        raise ExecutionError("not ready: " + ", ".join(f"{k}={v}" for k, v in checks.items()))
    # The API serves without workers (so it stays ready), but statuses then go stale:
    # say so, for `hearth app list` and people.
    workers = await fleet_liveness(ctx.redis)
    return {"status": "degraded" if workers.stale else "ready", "checks": checks,
            "workers": {"alive": workers.alive, "last_beat_age_seconds": workers.last_beat_age,
                        "stale": workers.stale, "message": workers.describe()}}


class MetricsController(PrometheusController):
    path = "/metrics"
    opt = {"permission": "metrics"}
    include_in_schema = False


ROUTES = [health, ready, MetricsController]
