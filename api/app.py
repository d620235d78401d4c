"""The Litestar application: ``create_app(settings=None)``.

Wiring only. Pools (PostgreSQL, Redis), the batched heartbeat writer and the
token resolver are opened in the lifespan and closed after the last request;
routes live in ``api.routes``; who may call what is ``api.auth.PERMISSIONS``,
enforced by the guard on every router; errors become problem details in
``api.errors``. Migrations are applied at start (advisory-locked, so many
workers starting at once is safe).
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, Router
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig
from litestar.plugins.pydantic import PydanticPlugin
from litestar.stores.redis import RedisStore
from redis.asyncio import BlockingConnectionPool, Redis

from api import ui
from api.auth import HearthAuthenticationMiddleware, authorize
from api.context import ApiContext, Limits
from api.deps import DEPENDENCIES
from api.edge import ClientAddressMiddleware, HearthRequest, SecurityHeadersMiddleware
from api.errors import EXCEPTION_HANDLERS
from api.observability import RequestIdMiddleware, configure_logging
from api.ratelimit import STORE_NAME, by_address, by_bearer, limit
from api.routes import (
    appliances,
    auth,
    git,
    heartbeat,
    history,
    ops,
    people,
    pulls,
    runs,
    support,
    tenants,
    tokens,
)
from engine.assistant.service import SupportService
from engine.db.appliances import TokenResolver
from engine.db.heartbeats import HeartbeatWriter
from engine.db.migrate import apply_migrations
from engine.db.pool import create_pool
from engine.pulls.service import PullRequests
from engine.reconcile.queue import ReconcileQueue
from engine.reconcile.source import DesiredSource
from engine.reconcile.triggers import HeartbeatTrigger
from engine.repos.reader import SnapshotReader
from engine.repos.store import RepoStore
from engine.settings import Settings, load_settings

PUBLIC_PATHS = ["^/health$", "^/metrics", "^/schema", "^/ui/static/"]


def create_app(settings: Settings | None = None, *, limits: Limits | None = None,
               migrate: bool = True, pool_size: int = 10) -> Litestar:
    settings = settings or load_settings()
    limits = limits or Limits()
    # Blocking pool: under load, requests wait briefly for a connection instead of failing.
    redis = Redis.from_pool(BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=64, timeout=5))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url, min_size=2, max_size=pool_size)
        try:
            if migrate:
                await apply_migrations(pool)
            source = DesiredSource(store=RepoStore(settings.repos_dir), reader=SnapshotReader())
            queue = ReconcileQueue(redis)
            pull_requests = PullRequests(pool=pool, store=source.store, reader=source.reader,
                                         queue=queue)
            ctx = ApiContext(
                settings=settings, limits=limits, pool=pool, redis=redis,
                writer=HeartbeatWriter(pool, history_limit=limits.history_per_appliance,
                                       max_in_flight=4, linger=0.001),
                tokens=TokenResolver(pool, secret_key=settings.secret_key),
                source=source, queue=queue,
                heartbeat_trigger=HeartbeatTrigger(queue=queue, redis=redis, source=source),
                pulls=pull_requests,
                # The API only stores and queues requests; the model is called by the
                # support worker (``hearth support worker``), never in a request.
                support=SupportService(pool=pool, redis=redis, store=source.store,
                                       reader=source.reader, pulls=pull_requests, model=None))
            app.state.ctx = ctx
            # Everything built so far (Litestar, pydantic schemas, the app) lives for the
            # process: keep it out of the cyclic GC, whose full collections otherwise walk
            # it and stall the event loop 60-90 ms (the p99 of heartbeats at 2,000/s).
            gc.collect()
            gc.freeze()
            yield
            await pull_requests.aclose()
            await ctx.writer.close()
            await ctx.tokens.close()
        finally:
            await pool.close()
            await redis.aclose()

    guarded = {"guards": [authorize], "dependencies": DEPENDENCIES}
    routers = [
        Router("/", route_handlers=[*ops.ROUTES, *people.ROUTES, *tenants.ROUTES,
                                    *appliances.ROUTES, *runs.ROUTES, *tokens.ROUTES,
                                    *pulls.ROUTES, *history.ROUTES, *support.ROUTES],
               **guarded),
        # Git authenticates with HTTP basic and a personal access token itself
        # (api/routes/git.py), checking the same PERMISSIONS rules.
        Router("/", route_handlers=git.ROUTES),
        Router("/", route_handlers=auth.ROUTES, **guarded, middleware=[
            limit("login", limits.login_per_minute_per_address, by_address).middleware]),
        Router("/", route_handlers=heartbeat.ROUTES, **guarded, middleware=[
            limit("heartbeat", limits.heartbeat_per_minute, by_bearer).middleware]),
        # The web console (api/ui): same guard and PERMISSIONS, not in the OpenAPI document.
        *ui.routers(settings),
    ]
    prometheus = PrometheusConfig(app_name="hearth", prefix="hearth_http", group_path=True,
                                  exclude=["^/metrics"])
    app = Litestar(
        route_handlers=routers,
        request_class=HearthRequest,
        # strict=None: each model's own config decides (request models are strict, so "123"
        # is no sequence number); Litestar's default passes strict=False, overriding them.
        plugins=[PydanticPlugin(validate_strict=None)],  # type: ignore[arg-type]
        lifespan=[lifespan],
        middleware=[
            RequestIdMiddleware,
            prometheus.middleware,
            DefineMiddleware(HearthAuthenticationMiddleware, exclude=[*PUBLIC_PATHS, "^/git/"]),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        template_config=ui.template_config(),
        stores={STORE_NAME: RedisStore(redis, namespace="hearth-ratelimit",
                                       handle_client_shutdown=False)},
        request_max_body_size=limits.body_bytes,
        openapi_config=OpenAPIConfig(
            title="Hearth API", version="1.0.0", path="/schema",
            description="GitOps control plane for small-office server appliances. People "
                        "authenticate with a JWT from POST /api/v1/auth/token; appliances "
                        "with their hth_app_ token. Errors are RFC 9457 problem details.",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin(path="/swagger")],
            components=Components(security_schemes={
                "BearerToken": SecurityScheme(type="http", scheme="bearer",
                                              description="JWT or appliance token")}),
            security=[{"BearerToken": []}],
        ),
        logging_config=None,
        debug=False,
    )
    # Outside Litestar's router and exception handling, so that every answer (a 404 for
    # no route, a problem from a middleware) gets the headers and the client address is
    # settled before anything reads it (api/edge.py).
    app.asgi_handler = ClientAddressMiddleware(SecurityHeadersMiddleware(app.asgi_handler),
                                               settings.trusted_proxy_networks)
    return app


def serve_app() -> Litestar:
    """The factory ``hearth serve`` hands to uvicorn: JSON logs, then the app."""
    settings = load_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
