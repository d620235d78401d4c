"""The one path from a revision to a plan: desired state, observed state, ``preview_plan``.

Every question of the form "what would this revision do to this appliance?"
is answered here, so the reconciler, the heartbeat trigger, the API's config
and diff routes (and later the pull request preview) cannot disagree:

- **which revision applies** to a tenant: the head of ``main`` when it
  validates, else the tenant's last good revision (invariant 7 of
  ``docs/architecture.md``). ``select`` is the reconciler's form, which also
  records the validation on the tenant row; ``revision`` and ``config`` are
  the read-only forms the API uses.
- **the desired canonical form** per (tenant, appliance, revision), computed
  once and kept in one bounded cache: resyncs and heartbeats plan the same
  revision many times.
- **the latest observed state** (``observation``) and the stored inventory
  (``stored_inventory``).
- **the plan**: ``plan`` (inputs already loaded, as the reconciler has them)
  and ``preview_plan`` (everything read for the caller).
- **the status as read**: ``read_status`` puts what is known since the last
  pass (a newer heartbeat planned as the trigger plans it, a newer revision,
  the heartbeat's age, an invalid head from ``head_error``) on the stored
  status, by the rules of ``engine.planning.health.status_as_read``.

Heads are cached in ONE place, ``head(tenant, max_age=...)``: the
reconciler and the config route read the ref every time (``max_age=0``); a
heartbeat acknowledgement or trigger may be up to a second behind a merge,
which is harmless because reconcile is level-triggered.

The planning itself stays pure in ``engine.planning``; this module is the
thin adapter that feeds it from git and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pygit2

from engine.db import appliances as appliance_db
from engine.db import heartbeats as heartbeat_db
from engine.db import runs as run_db
from engine.db import tenants as tenant_db
from engine.errors import ConfigError, ConflictError, NotFoundError
from engine.planning.health import ReadInputs, status_as_read
from engine.planning.normalize import CanonicalState, normalize_desired
from engine.planning.plan import build_plan
from engine.repos.reader import DesiredSnapshot, SnapshotReader
from engine.repos.store import RepoStore
from schemas.config import DesiredAppliance
from schemas.heartbeat import ObservedState
from schemas.plan import EMPTY_INVENTORY, Inventory, Plan
from schemas.status import ApplianceStatus, Condition, HealthStatus, SyncStatus

Db = asyncpg.Connection | asyncpg.Pool
"""Anything that runs a query: a connection the caller holds, or the pool."""

CANONICAL_LIMIT = 20_000
"""Cached desired canonical forms (one per appliance and revision) before the cache is
dropped and rebuilt: ~10 kB each, so at most ~200 MB."""


@dataclass(frozen=True, slots=True)
class DesiredConfig:
    """Desired state of one appliance at the revision that applies to it."""

    revision: str
    appliance: DesiredAppliance


@dataclass(frozen=True, slots=True)
class Selection:
    """The reconciler's source step: the snapshot to apply (None when there is none) and,
    when the head of main was not applied, why."""

    snapshot: DesiredSnapshot | None
    config_error: str | None


@dataclass(frozen=True, slots=True)
class Observation:
    """The latest heartbeat's observed state, or ``None`` twice when there is none yet."""

    observed: ObservedState | None = None
    received_at: datetime | None = None
    applied_run: int | None = None
    """The run the box reports it was last converged by (``Heartbeat.applied_run``)."""


def invalid_message(revision: str, error: ConfigError) -> str:
    """Why a revision of main is not applied, each issue as file:line:col: message."""
    return (f"revision {revision[:12]} of main is invalid and was not applied: "
            + "; ".join(str(i) for i in error.issues[:5]))


def stored_inventory(status_row: dict[str, Any] | None) -> Inventory:
    """The inventory the reconciler stored with the appliance's status (empty if none)."""
    stored = (status_row or {}).get("inventory") or {}
    return Inventory.model_validate(stored.get("plan") or {})


def plan_at(*, desired: DesiredAppliance, revision: str, observed: ObservedState | None,
            inventory: Inventory, now: datetime, secrets: bool = True,
            desired_canonical: CanonicalState | None = None) -> Plan:
    """The one way a revision becomes a plan: ``desired`` at ``revision`` against ``observed``
    and the stored ``inventory``, under the appliance's own policy. ``DesiredSource.plan``
    (reconciler, trigger, API) and the pull request preview both call it."""
    return build_plan(desired=desired, observed=observed, inventory=inventory,
                      policy=desired.policies, revision=revision, now=now,
                      desired_canonical=desired_canonical, secrets=secrets)


class DesiredSource:
    """One per process; shared by the reconciler, the trigger and the API. Not a cache of
    truth: git holds desired state, this only remembers what it read."""

    def __init__(self, *, store: RepoStore, reader: SnapshotReader,
                 canonical_limit: int = CANONICAL_LIMIT) -> None:
        self.store = store
        self.reader = reader
        self._canonical_limit = canonical_limit
        self._heads: dict[str, tuple[float, str | None]] = {}
        self._canonicals: dict[tuple[str, str, str], CanonicalState] = {}
        self._valid: dict[tuple[str, str], bool] = {}
        self._errors: dict[tuple[str, str], str] = {}
        """(tenant, revision) -> why it does not validate, file:line:col first."""
        self._repos: dict[str, tuple[str, pygit2.Repository]] = {}
        """tenant -> (head, open repository), for the event loop's own thread only
        (``snapshot_now``): opening one costs ~0.5 ms, and libgit2 handles are not shared
        across threads."""

    # ------------------------------------------------------------------ #
    # Which revision
    # ------------------------------------------------------------------ #

    def head(self, tenant: str, *, max_age: float = 0.0) -> str | None:
        """The head of the tenant's ``main``, read at most ``max_age`` seconds ago.

        ``NotFoundError`` when the tenant has no repository.
        """
        now = time.monotonic()
        if max_age > 0:
            cached = self._heads.get(tenant)
            if cached is not None and now - cached[0] < max_age:
                return cached[1]
        head = self.store.head(tenant)
        self._heads[tenant] = (now, head)
        return head

    def load(self, tenant: str, revision: str) -> DesiredSnapshot:
        """The validated snapshot at ``revision`` (blocking: call it in a thread)."""
        return self.reader.load(self.store.open(tenant), revision, tenant=tenant)

    def snapshot_now(self, tenant: str, revision: str) -> DesiredSnapshot:
        """``load`` for the event loop's thread, reusing the open repository."""
        repo = self._repos.get(tenant)
        if repo is None or repo[0] != revision:
            repo = self._repos[tenant] = (revision, self.store.open(tenant))
        return self.reader.load(repo[1], revision, tenant=tenant)

    def is_valid(self, tenant: str, revision: str) -> bool:
        """Whether ``revision`` validates (remembered per commit; blocking)."""
        key = (tenant, revision)
        if key not in self._valid:
            try:
                self.load(tenant, revision)
                self._valid[key] = True
            except ConfigError as exc:
                self._errors[key] = invalid_message(revision, exc)
                self._valid[key] = False
        return self._valid[key]

    async def head_error(self, tenant: str) -> str | None:
        """Why the head of ``tenant``'s main is not applied (file:line:col), or None when
        it validates or there is none. Reads the ref now; validation is remembered."""
        head = await asyncio.to_thread(self._existing_head, tenant, 0.0)
        if head is None or await asyncio.to_thread(self.is_valid, tenant, head):
            return None
        return self._errors.get((tenant, head))

    async def revision(self, db: Db, tenant: str, *, max_age: float = 0.0) -> str | None:
        """The revision appliances of ``tenant`` should converge to: the head of main when
        it validates, else the last good one; None when there is neither.

        With ``max_age`` (heartbeat acknowledgements) a remembered head answers without a
        thread hop: this runs for every heartbeat."""
        cached = self._heads.get(tenant)
        if max_age > 0 and cached is not None and time.monotonic() - cached[0] < max_age:
            head = cached[1]
        else:
            head = await asyncio.to_thread(self._existing_head, tenant, max_age)
        if head is None:
            return head
        valid = self._valid.get((tenant, head))
        if valid is None:
            valid = await asyncio.to_thread(self.is_valid, tenant, head)
        return head if valid else await self._last_good(db, tenant)

    async def config(self, db: Db, tenant: str, name: str) -> DesiredConfig:
        """Desired state of appliance ``name`` at the revision that applies (the ref is
        read now). ``NotFoundError`` without a repository or appliance; ``ConflictError``
        when no revision of main has ever validated."""
        head = await asyncio.to_thread(self._existing_head, tenant, 0.0)
        if head is None:
            raise NotFoundError(f"tenant {tenant!r} has no configuration yet")
        if not await asyncio.to_thread(self.is_valid, tenant, head):
            head = await self._last_good(db, tenant)
            if head is None:
                raise ConflictError(f"tenant {tenant!r} has no revision that validates")
        revision = head

        def desired() -> DesiredAppliance:
            return self.load(tenant, revision).desired(name)

        return DesiredConfig(revision, await asyncio.to_thread(desired))

    async def select(self, conn: asyncpg.Connection, tenant_row: dict[str, Any]) -> Selection:
        """The reconciler's source step: the head of main when valid, else the last good
        revision; the validation of a head not seen before is recorded on the tenant."""
        tenant = tenant_row["name"]
        head = self.head(tenant)  # a ref read: cheaper than a thread hop
        if head is None:
            return Selection(None, "the repository has no main branch")
        try:
            snapshot = await asyncio.to_thread(self.load, tenant, head)
        except ConfigError as exc:
            self._valid[(tenant, head)] = False
            if tenant_row.get("validated_revision") != head:
                await tenant_db.record_validation(conn, tenant_id=tenant_row["id"], revision=head,
                                                  errors=[i.as_dict() for i in exc.issues])
            message = self._errors[(tenant, head)] = invalid_message(head, exc)
            good = tenant_row.get("last_good_revision")
            if good is None:
                return Selection(None, message)
            return Selection(await asyncio.to_thread(self.load, tenant, good), message)
        if tenant_row.get("validated_revision") != head:
            await tenant_db.record_validation(conn, tenant_id=tenant_row["id"], revision=head,
                                              errors=[])
        return Selection(snapshot, None)

    def _existing_head(self, tenant: str, max_age: float) -> str | None:
        if not self.store.exists(tenant):
            return None
        return self.head(tenant, max_age=max_age)

    @staticmethod
    async def _last_good(db: Db, tenant: str) -> str | None:
        row = await tenant_db.get_tenant_by_name(db, tenant)  # type: ignore[arg-type]
        return row["last_good_revision"] if row else None

    # ------------------------------------------------------------------ #
    # Desired canonical form, observed state
    # ------------------------------------------------------------------ #

    def canonical(self, desired: DesiredAppliance, revision: str) -> CanonicalState:
        """``normalize_desired(desired)``, once per (tenant, appliance, revision)."""
        key = (desired.tenant, desired.name, revision)
        found = self._canonicals.get(key)
        if found is None:
            if len(self._canonicals) >= self._canonical_limit:
                self._canonicals.clear()
            found = self._canonicals[key] = normalize_desired(desired)
        return found

    @staticmethod
    async def observation(db: Db, appliance_id: uuid.UUID) -> Observation:
        """What the appliance's latest heartbeat says it has."""
        latest = await heartbeat_db.latest(db, appliance_id)  # type: ignore[arg-type]
        if latest is None:
            return Observation()
        return Observation(ObservedState.model_validate(latest["observed"]),
                           latest["received_at"], latest["applied_run"])

    # ------------------------------------------------------------------ #
    # The plan
    # ------------------------------------------------------------------ #

    def plan(self, *, desired: DesiredAppliance, revision: str, observed: ObservedState | None,
             inventory: Inventory, now: datetime, secrets: bool = True) -> Plan:
        """The plan of ``desired`` at ``revision`` against ``observed`` (pure but for the
        canonical cache). ``secrets=False`` leaves out pending vault values: the heartbeat
        trigger has no inventory to compare them with."""
        return plan_at(desired=desired, revision=revision, observed=observed,
                       inventory=inventory, now=now, secrets=secrets,
                       desired_canonical=self.canonical(desired, revision))

    def heartbeat_plan(self, tenant: str, name: str, observed: ObservedState, *,
                       revision: str, now: datetime) -> Plan:
        """The plan the heartbeat trigger judges by: desired state at ``revision`` (loaded on
        this thread) against a fresh report, without stored inventory or secrets.
        ``ConfigError`` / ``NotFoundError`` when the revision or appliance is not there."""
        desired = self.snapshot_now(tenant, revision).desired(name)
        return self.plan(desired=desired, revision=revision, observed=observed,
                         inventory=EMPTY_INVENTORY, now=now, secrets=False)

    def read_status(self, row: dict[str, Any], *, revision: str | None,
                    source_error: str | None, now: datetime,
                    heartbeat_interval: timedelta) -> ApplianceStatus:
        """The stored status of an appliance as it reads now (``health.status_as_read``):
        ``row`` is ``engine.db.appliances.status_row`` with a status (``row["sync"]`` set);
        its latest heartbeat is planned at ``revision`` as the heartbeat trigger does."""
        stored = ApplianceStatus(
            sync=SyncStatus(row["sync"]), health=HealthStatus(row["health"]),
            conditions=tuple(Condition.model_validate(c) for c in row.get("conditions") or ()),
            desired_revision=row.get("desired_revision"),
            applied_revision=row.get("applied_revision"))
        plan = None
        if revision is not None and row.get("observed") is not None:
            observed = ObservedState.model_validate(row["observed"])
            with contextlib.suppress(ConfigError, NotFoundError):
                plan = self.heartbeat_plan(row["tenant"], row["name"], observed,
                                           revision=revision, now=now)
        return status_as_read(stored, ReadInputs(
            now=now, heartbeat_interval=heartbeat_interval, stored_at=row["status_updated_at"],
            heartbeat_received_at=row.get("received_at"), revision=revision, plan=plan,
            source_error=source_error))

    async def preview_plan(self, conn: asyncpg.Connection, *, tenant: str, appliance: str,
                           revision: str | None = None, now: datetime | None = None) -> Plan:
        """What ``revision`` (default: the one that applies now) would do to ``appliance``
        of ``tenant``, from its latest heartbeat and the inventory stored for it.

        ``NotFoundError`` for an unknown tenant or appliance, or one not defined at the
        revision; ``ConfigError`` when an explicit ``revision`` does not validate.
        """
        tenant_row = await tenant_db.require_tenant(conn, tenant)
        row = await appliance_db.get_appliance_by_name(conn, tenant_id=tenant_row["id"],
                                                       name=appliance)
        if revision is None:
            found = await self.config(conn, tenant, appliance)
            desired, revision = found.appliance, found.revision
        else:
            at = revision
            desired = await asyncio.to_thread(
                lambda: self.load(tenant, at).desired(appliance))
        seen = await self.observation(conn, row["id"])
        inventory = stored_inventory(await run_db.get_status(conn, row["id"]))
        return self.plan(desired=desired, revision=revision, observed=seen.observed,
                         inventory=inventory, now=now or datetime.now(UTC))
