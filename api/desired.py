"""The revision an appliance should run and its desired state there, read from git.

Invariant 8 of DESIGN.md: a head of ``main`` that does not validate is never
served; appliances get the tenant's last good revision (``tenants.
last_good_revision``) and the config route answers from it. Heads are cached
for ``head_ttl`` seconds for heartbeat acknowledgements only (a heartbeat ack
one second behind a merge is harmless: reconcile is level-triggered); the
config route always reads the ref.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import anyio.to_thread
import asyncpg

from engine.db import tenants
from engine.errors import ConfigError, ConflictError, NotFoundError
from engine.repos.reader import SnapshotReader
from engine.repos.store import RepoStore
from schemas.config import DesiredAppliance


@dataclass(frozen=True, slots=True)
class DesiredConfig:
    revision: str
    appliance: DesiredAppliance


class DesiredRevisions:
    def __init__(self, *, repos: RepoStore, reader: SnapshotReader, pool: asyncpg.Pool,
                 head_ttl: float = 1.0) -> None:
        self._repos = repos
        self._reader = reader
        self._pool = pool
        self._head_ttl = head_ttl
        self._heads: dict[str, tuple[float, str | None]] = {}
        self._valid: dict[tuple[str, str], bool] = {}

    def _head(self, tenant: str) -> str | None:
        if not self._repos.exists(tenant):
            return None
        return self._repos.head(tenant)

    def _is_valid(self, tenant: str, commit: str) -> bool:
        key = (tenant, commit)
        if key not in self._valid:
            try:
                self._reader.load(self._repos.open(tenant), commit, tenant=tenant)
                self._valid[key] = True
            except ConfigError:
                self._valid[key] = False
        return self._valid[key]

    async def _last_good(self, tenant: str) -> str | None:
        async with self._pool.acquire() as conn:
            row = await tenants.get_tenant_by_name(conn, tenant)
        return row["last_good_revision"] if row else None

    async def revision(self, tenant: str) -> str | None:
        """The revision appliances of ``tenant`` should converge to (cached briefly)."""
        now = time.monotonic()
        cached = self._heads.get(tenant)
        if cached is not None and now - cached[0] < self._head_ttl:
            return cached[1]
        head = await anyio.to_thread.run_sync(self._head, tenant)
        if head is not None and not await anyio.to_thread.run_sync(self._is_valid, tenant, head):
            head = await self._last_good(tenant)
        self._heads[tenant] = (now, head)
        return head

    async def config(self, tenant: str, name: str) -> DesiredConfig:
        """Desired state of appliance ``name`` at the newest valid revision."""
        head = await anyio.to_thread.run_sync(self._head, tenant)
        if head is None:
            raise NotFoundError(f"tenant {tenant!r} has no configuration yet")
        if not await anyio.to_thread.run_sync(self._is_valid, tenant, head):
            head = await self._last_good(tenant)
            if head is None:
                raise ConflictError(f"tenant {tenant!r} has no revision that validates")

        def load() -> DesiredAppliance:
            snapshot = self._reader.load(self._repos.open(tenant), head, tenant=tenant)
            return snapshot.desired(name)

        return DesiredConfig(head, await anyio.to_thread.run_sync(load))
