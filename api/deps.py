"""Dependency providers: the per-process context, the caller, a pooled connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from api.auth import ANONYMOUS, Principal
from api.context import ApiContext


def provide_ctx(state: State) -> ApiContext:
    return state.ctx  # type: ignore[no-any-return]


def provide_principal(request: Request) -> Principal:
    return request.scope.get("user") or ANONYMOUS  # type: ignore[return-value]


def provide_tenant_row(request: Request) -> dict[str, Any]:
    """The tenant the guard resolved for a tenant- or appliance-scoped route."""
    return request.state.tenant  # type: ignore[no-any-return]


def provide_appliance_row(request: Request) -> dict[str, Any]:
    """The appliance the guard resolved for an appliance-scoped route."""
    return request.state.appliance  # type: ignore[no-any-return]


async def provide_conn(state: State) -> AsyncIterator[asyncpg.Connection]:
    async with state.ctx.pool.acquire() as conn:
        yield conn


DEPENDENCIES = {
    "ctx": Provide(provide_ctx, sync_to_thread=False),
    "principal": Provide(provide_principal, sync_to_thread=False),
    "conn": Provide(provide_conn),
    "tenant_row": Provide(provide_tenant_row, sync_to_thread=False),
    "appliance_row": Provide(provide_appliance_row, sync_to_thread=False),
}


# Parameter types for handlers: each names the dependency above it injects.
Ctx = NamedDependency[ApiContext]
Conn = NamedDependency[asyncpg.Connection]
Caller = NamedDependency[Principal]
TenantRow = NamedDependency[dict[str, Any]]
ApplianceRow = NamedDependency[dict[str, Any]]
