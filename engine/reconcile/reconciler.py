"""One reconcile pass over some appliances of one tenant: the ordered steps.

The worker hands a ``Reconciler`` a tenant and the appliance names it claimed
from the queue. The pass is level-triggered: it trusts nothing from the queue
but the names, and re-reads everything:

1. **Lock.** Take each appliance's PostgreSQL advisory lock on a connection
   held for the whole pass (docs/architecture.md, invariant 4: the lock dies with the
   worker). An appliance locked elsewhere is handed back to the queue. With
   the locks held, any run still marked ``running`` for them belongs to a dead
   worker and is marked ``interrupted``.
2. **Source.** Read the head of the tenant's ``main`` through the snapshot
   reader. An invalid revision is recorded on the tenant and never applied:
   the pass continues with the tenant's last good revision (invariant 7).
3. **Plan.** For each appliance: desired state at that revision, observed state
   from its latest heartbeat, its inventory, the tenant's policy -> ``Plan``
   (pure). Queued manual syncs for it are claimed.
4. **Decide.** ``planning.policy.decide`` says whether the plan may run now
   (auto_sync for a new revision, self_heal for drift, maintenance windows,
   manual overrides). The same failure repeated ``max_failures`` times
   stalls the appliance until a new revision or a manual sync.
5. **Run.** The appliances that may run are converged in ONE ansible-runner
   run, limited to them and to the domains their plans touch. The run row is
   written before Ansible starts; events stream into ``run_events`` while it
   goes; per-host results, counts and duration are written when it ends.
   A dry run (manual, ``check_mode``) runs alone, in check mode, and changes
   nothing but its own run record.
6. **Status.** In a ``finally``, every appliance's status is recomputed from
   what is now known (``planning.health.status_after``) and stored, with the
   inventory of what Hearth manages on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

from engine.db import appliances as appliance_db
from engine.db import runs as run_db
from engine.db import tenants as tenant_db
from engine.errors import ExecutionError, HearthError, NotFoundError
from engine.execution.ansible import AnsibleExecutor, RunResult, run_record
from engine.execution.extravars import (
    ManagedInventory,
    Secrets,
    appliance_vars,
    build_extravars,
    decrypt_vault_value,
    managed_inventory,
    password_hashes,
    samba_passwords,
)
from engine.execution.processes import kill_orphans
from engine.execution.workspace import Target
from engine.planning.health import (
    HeartbeatSummary,
    RunSummary,
    StatusInputs,
    applied_after,
    status_after,
    with_decision,
)
from engine.planning.plan import ApplyResult, next_inventory
from engine.planning.policy import Decision, decide
from engine.reconcile.queue import Claim, ReconcileQueue
from engine.reconcile.source import DesiredSource, stored_inventory
from engine.reconcile.triggers import mark_settled
from engine.repos.reader import DesiredSnapshot, SnapshotReader
from engine.repos.store import RepoStore
from engine.settings import Settings
from schemas.config import DesiredAppliance
from schemas.heartbeat import ObservedState
from schemas.plan import Inventory, Plan
from schemas.status import ApplianceStatus

log = logging.getLogger("hearth.reconcile")

LOCK_NAMESPACE = 0x4E4152  # the first int of every appliance advisory lock


def appliance_lock_sql() -> str:
    return "SELECT pg_try_advisory_lock($1::int, hashtext($2::text))"


class Outcome(StrEnum):
    """What the worker tells the queue about one appliance after a pass."""

    DONE = "done"
    """Settled for now: converged, nothing to do, or not Hearth's to do."""
    RETRY = "retry"
    """The run failed on it: back off and try again (counted towards Stalled)."""
    SKIPPED = "skipped"
    """Not reached yet (the pass ended early); becomes DONE at the end of a pass."""
    BUSY = "busy"
    """Another worker holds its lock: re-queue shortly."""


@dataclass
class Member:
    """One appliance inside a pass: everything read about it, and what happened."""

    name: str
    claim: Claim | None
    row: dict[str, Any] | None = None
    desired: DesiredAppliance | None = None
    observed: ObservedState | None = None
    received_at: datetime | None = None
    status_row: dict[str, Any] | None = None
    plan: Plan | None = None
    plan_inventory: Inventory = field(default_factory=Inventory)
    ansible_inventory: ManagedInventory = field(default_factory=ManagedInventory)
    requests: list[dict[str, Any]] = field(default_factory=list)
    decision: Decision | None = None
    stalled: bool = False
    run_id: int | None = None
    run_outcome: str | None = None
    run_error: str = ""
    applied_revision: str | None = None
    failures: int = 0
    outcome: Outcome = Outcome.SKIPPED

    @property
    def id(self) -> uuid.UUID:
        assert self.row is not None
        return self.row["id"]

    @property
    def key(self) -> str:
        assert self.desired is not None
        return f"{self.desired.tenant}/{self.name}"


@dataclass(frozen=True)
class PassReport:
    """What one pass did, for the worker's logs and for tests."""

    tenant: str
    revision: str | None
    run_ids: list[int]
    outcomes: dict[str, Outcome]
    config_error: str | None = None


class Reconciler:
    """Runs reconcile passes. One per worker process; passes may run concurrently."""

    def __init__(self, *, settings: Settings, pool: asyncpg.Pool, redis: Redis,
                 queue: ReconcileQueue,
                 reader: SnapshotReader, executor: AnsibleExecutor, worker_id: str,
                 source: DesiredSource | None = None,
                 roots_dir: Path | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.pool = pool
        self.redis = redis
        self.queue = queue
        self.source = source or DesiredSource(store=RepoStore(settings.repos_dir), reader=reader)
        self.executor = executor
        self.worker_id = worker_id
        self.roots_dir = roots_dir or settings.data_dir / "appliances"
        self.now = now
        self.max_failures = queue.backoff.max_failures

    # ------------------------------------------------------------------ #
    # The pass
    # ------------------------------------------------------------------ #

    async def reconcile(self, tenant: str, members: list[Member]) -> PassReport:
        async with self.pool.acquire() as lock_conn:
            locked: list[Member] = []
            try:
                tenant_row = await tenant_db.get_tenant_by_name(lock_conn, tenant)
                if tenant_row is None:
                    for m in members:
                        m.outcome = Outcome.DONE  # a key for a tenant that no longer exists
                    return PassReport(tenant, None, [], {m.name: m.outcome for m in members})
                for member in members:
                    if await self._lock(lock_conn, tenant_row, member):
                        locked.append(member)
                if not locked:
                    return PassReport(tenant, None, [], {m.name: m.outcome for m in members})
                interrupted = await run_db.interrupt_stale(lock_conn, [m.id for m in locked])
                if interrupted:
                    log.warning("marked runs %s interrupted (their worker died)", interrupted)
                    killed = kill_orphans(self.executor.runs_dir, interrupted)
                    if killed:
                        log.warning("stopped orphaned ansible processes %s", killed)
                return await self._locked_pass(lock_conn, tenant_row, locked, members)
            finally:
                for member in locked:
                    await lock_conn.execute("SELECT pg_advisory_unlock($1::int, hashtext($2::text))",
                                            LOCK_NAMESPACE, str(member.id))

    async def _lock(self, conn: asyncpg.Connection, tenant_row: dict[str, Any],
                    member: Member) -> bool:
        try:
            member.row = await appliance_db.get_appliance_by_name(
                conn, tenant_id=tenant_row["id"], name=member.name)
        except NotFoundError:
            member.outcome = Outcome.DONE  # defined in git but not registered (or deleted): nothing to do
            return False
        got = await conn.fetchval(appliance_lock_sql(), LOCK_NAMESPACE, str(member.row["id"]))
        if not got:
            member.outcome = Outcome.BUSY
            return False
        return True

    async def _locked_pass(self, conn: asyncpg.Connection, tenant_row: dict[str, Any],
                           locked: list[Member], members: list[Member]) -> PassReport:
        tenant = tenant_row["name"]
        selection = await self.source.select(conn, tenant_row)
        snapshot, config_error = selection.snapshot, selection.config_error
        run_ids: list[int] = []
        try:
            if snapshot is None:
                for m in locked:
                    m.outcome = Outcome.DONE
                return PassReport(tenant, None, [], {m.name: m.outcome for m in members},
                                  config_error)
            for member in locked:
                await self._plan(conn, snapshot, member)
            runnable = [m for m in locked if m.decision is not None and m.decision.run]
            for member in [m for m in runnable if self._dry_run_request(m)]:
                run_ids.append(await self._dry_run(conn, tenant_row, snapshot, member))
            batch = [m for m in runnable if not self._dry_run_request(m)]
            if batch:
                run_ids.append(await self._run(conn, tenant_row, snapshot, batch))
            for member in locked:
                if member.outcome is Outcome.SKIPPED:
                    member.outcome = Outcome.DONE
        finally:
            if snapshot is not None:
                for member in locked:
                    await self._write_status(conn, snapshot, member, config_error)
        return PassReport(tenant, snapshot.commit, run_ids, {m.name: m.outcome for m in members},
                          config_error)

    # ------------------------------------------------------------------ #
    # Steps
    # ------------------------------------------------------------------ #

    async def _plan(self, conn: asyncpg.Connection, snapshot: DesiredSnapshot,
                    member: Member) -> None:
        try:
            member.desired = snapshot.desired(member.name)
        except NotFoundError:
            member.outcome = Outcome.DONE  # registered but no longer in git: nothing to converge
            return
        seen = await self.source.observation(conn, member.id)
        member.observed, member.received_at = seen.observed, seen.received_at
        member.status_row = await run_db.get_status(conn, member.id)
        stored = (member.status_row or {}).get("inventory") or {}
        member.plan_inventory = stored_inventory(member.status_row)
        member.ansible_inventory = ManagedInventory.from_dict(stored.get("ansible"))
        member.applied_revision = (member.status_row or {}).get("applied_revision")
        member.failures = (member.status_row or {}).get("consecutive_failures") or 0
        member.plan = self.source.plan(desired=member.desired, revision=snapshot.commit,
                                       observed=member.observed,
                                       inventory=member.plan_inventory, now=self.now())
        member.requests = await run_db.claim_queued(conn, member.id)
        manual = bool(member.requests)
        if manual:
            await self.queue.reset(member.key)
            member.failures = 0
        elif member.failures >= self.max_failures and await self.queue.stalled(
                member.key, revision=snapshot.commit, plan_hash=member.plan.hash):
            member.stalled = True
            member.decision = Decision(False, "Stalled", "waiting for a new revision or a "
                                                         "manual sync")
            return
        if manual and self._dry_run_request(member):
            member.decision = Decision(True, "DryRun", "an operator asked for a dry run")
            return
        member.decision = decide(plan=member.plan, policy=member.desired.policies,
                                 applied_revision=member.applied_revision, manual=manual,
                                 now=self.now())
        if manual and not member.decision.run:
            # Nothing to do: close the requests so the caller sees an answer.
            for request in member.requests:
                await run_db.finish_run(conn, request["id"], status="succeeded",
                                        results={member.name: {"plan": "empty"}}, changed=0,
                                        failed=0)

    @staticmethod
    def _dry_run_request(member: Member) -> bool:
        return any(r["check_mode"] for r in member.requests)

    def _target(self, tenant: str, member: Member) -> Target:
        root = self.roots_dir / tenant / member.name
        if root.is_dir():
            return Target(name=member.name, root=root)
        assert member.desired is not None
        return Target(name=member.name, address=member.desired.hostname)

    async def _vars(self, conn: asyncpg.Connection, member: Member, revision: str
                    ) -> dict[str, Any]:
        assert member.desired is not None
        def decrypt_all() -> tuple[dict[str, str], dict[str, str]]:
            # vault decryption is PBKDF2, CPU-bound: one thread hop for both kinds
            def decrypt(value: str) -> str:
                return decrypt_vault_value(value, self.settings.ansible_vault_password)
            return (password_hashes(member.desired, decrypt),
                    samba_passwords(member.desired, decrypt))

        hashes, smb_passwords = await asyncio.to_thread(decrypt_all)
        token = None
        if member.observed is None:
            # Never heard from: bootstrap the agent with a fresh token (shown to nobody else).
            token = await appliance_db.rotate_token(conn, appliance_id=member.id,
                                                    secret_key=self.settings.secret_key)
        return appliance_vars(member.desired, previous=member.ansible_inventory,
                              secrets=Secrets(password_hashes=hashes,
                                              samba_passwords=smb_passwords, agent_token=token),
                              api_url=self.settings.api_url, revision=revision,
                              agent_interval_seconds=self.settings.agent_interval_seconds)

    async def _run(self, conn: asyncpg.Connection, tenant_row: dict[str, Any],
                   snapshot: DesiredSnapshot, batch: list[Member]) -> int:
        tenant = tenant_row["name"]
        domains = sorted({d for m in batch for d in (m.plan.domains_changed if m.plan else ())})
        if any(m.observed is None for m in batch):
            domains.append("agent")
        plan_doc = {m.name: m.plan.model_dump(mode="json") for m in batch if m.plan}
        requests = [r for m in batch for r in m.requests]
        trigger = "manual" if requests else ",".join(sorted({m.decision.reason for m in batch
                                                             if m.decision}))
        if requests:
            # The operator follows the run id the sync request returned: run under it.
            run_id = requests[0]["id"]
            await run_db.start_run(conn, run_id, worker_id=self.worker_id,
                                   revision=snapshot.commit, plan=plan_doc,
                                   appliance_ids=[m.id for m in batch])
        else:
            run_id = await run_db.create_run(
                conn, tenant_id=tenant_row["id"], appliance_ids=[m.id for m in batch],
                revision=snapshot.commit, plan=plan_doc, check_mode=False, trigger=trigger,
                worker_id=self.worker_id)
        for request in requests[1:]:
            await run_db.finish_run(conn, request["id"], status="succeeded",
                                    results={"superseded_by": run_id}, changed=0, failed=0)
        for member in batch:
            member.run_id = run_id
        log.info("run %s: tenant %s, %s, revision %s, domains %s", run_id, tenant,
                 [m.name for m in batch], snapshot.commit[:12], domains)
        result, error = await self._execute(
            conn, run_id=run_id, tenant=tenant, batch=batch, revision=snapshot.commit,
            domains=domains or None, check=False)
        await self._record(conn, run_id, batch, result, error, snapshot)
        return run_id

    async def _dry_run(self, conn: asyncpg.Connection, tenant_row: dict[str, Any],
                       snapshot: DesiredSnapshot, member: Member) -> int:
        request = next(r for r in member.requests if r["check_mode"])
        run_id = request["id"]
        plan_doc = {member.name: member.plan.model_dump(mode="json")} if member.plan else {}
        await run_db.start_run(conn, run_id, worker_id=self.worker_id, revision=snapshot.commit,
                               plan=plan_doc, appliance_ids=[member.id])
        result, error = await self._execute(
            conn, run_id=run_id, tenant=tenant_row["name"], batch=[member],
            revision=snapshot.commit, domains=None, check=True)
        results = run_record(result, [member.name])
        status = "succeeded" if result is not None and result.succeeded else "failed"
        await run_db.finish_run(conn, run_id, status=status, results=results,
                                changed=result.changed if result else 0,
                                failed=result.failed_hosts if result else 0, error=error)
        member.outcome = Outcome.DONE
        return run_id

    async def _execute(self, conn: asyncpg.Connection, *, run_id: int, tenant: str,
                       batch: list[Member], revision: str, domains: list[str] | None,
                       check: bool) -> tuple[RunResult | None, str | None]:
        """Run Ansible for ``batch`` while streaming its events; never raises for a bad run."""
        pending: list[tuple[int, str | None, str, dict[str, Any]]] = []
        seq = 0

        def on_event(summary: dict[str, Any]) -> None:
            nonlocal seq
            pending.append((seq, summary.get("host"), summary["event"], summary))
            seq += 1

        async def flush_events() -> None:
            while True:
                await asyncio.sleep(0.5)
                await _flush(self.pool, run_id, pending)

        async def keep_leases() -> None:
            while True:
                await asyncio.sleep(max(self.queue.lease_ms / 3000, 1))
                for member in batch:
                    if member.claim is not None:
                        await self.queue.extend(member.claim)

        flusher = asyncio.create_task(flush_events())
        leases = asyncio.create_task(keep_leases())
        error: str | None = None
        result: RunResult | None = None
        started = time.monotonic()
        try:
            variables = [await self._vars(conn, m, revision) for m in batch]
            result = await self.executor.run_async(
                run_id=str(run_id), extravars=build_extravars(variables),
                targets=[self._target(tenant, m) for m in batch],
                playbook="site", domains=domains, limit=[m.name for m in batch],
                check=check, on_event=on_event)
            if not result.succeeded:
                failed = [h for h, r in result.hosts.items() if not r.succeeded]
                error = f"ansible run {result.status}; failed hosts: {', '.join(failed)}"
        except (ExecutionError, HearthError) as exc:
            error = str(exc)
        finally:
            flusher.cancel()
            leases.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            with contextlib.suppress(asyncio.CancelledError):
                await leases
            await _flush(self.pool, run_id, pending)
        log.info("run %s finished in %.1f s: %s", run_id, time.monotonic() - started,
                 "ok" if error is None else error)
        return result, error

    async def _record(self, conn: asyncpg.Connection, run_id: int, batch: list[Member],
                      result: RunResult | None, error: str | None,
                      snapshot: DesiredSnapshot) -> None:
        results = run_record(result, [m.name for m in batch])
        status = "succeeded" if error is None else "failed"
        await run_db.finish_run(conn, run_id, status=status, results=results,
                                changed=result.changed if result else 0,
                                failed=result.failed_hosts if result else 0, error=error)
        for member in batch:
            assert member.desired is not None and member.plan is not None
            host = result.hosts.get(member.name) if result else None
            ok = host is not None and host.succeeded and result is not None and (
                result.status == "successful")
            if ok:
                member.run_outcome = "succeeded"
                member.applied_revision = snapshot.commit
                member.failures = 0
                member.plan_inventory = next_inventory(member.plan_inventory, member.desired,
                                                       ApplyResult(), plan=member.plan)
                member.ansible_inventory = managed_inventory(member.desired,
                                                             member.ansible_inventory)
                member.outcome = Outcome.DONE
            else:
                member.run_outcome = "failed"
                member.run_error = error or "the run failed on this appliance"
                member.failures += 1
                member.plan_inventory = next_inventory(
                    member.plan_inventory, member.desired,
                    ApplyResult(failed_domains=frozenset(member.plan.domains_changed)),
                    plan=member.plan)
                member.outcome = Outcome.RETRY

    async def _write_status(self, conn: asyncpg.Connection, snapshot: DesiredSnapshot,
                            member: Member, config_error: str | None) -> None:
        if member.desired is None or member.plan is None:
            return
        last = await run_db.last_finished_run(conn, member.id)
        run_summary = None
        if last is not None:
            plan_json = (last["plan"] or {}).get(member.name)
            run_plan = Plan.model_validate(plan_json) if plan_json else member.plan
            outcome = last["status"]
            run_summary = RunSummary(outcome=outcome, revision=last["revision"], plan=run_plan,
                                     finished_at=last["finished_at"], error=last["error"] or "")
        heartbeat = None
        if member.received_at is not None:
            heartbeat = HeartbeatSummary(received_at=member.received_at, plan=member.plan)
        previous = None
        if member.status_row and member.status_row.get("conditions"):
            with contextlib.suppress(ValueError):
                previous = ApplianceStatus.model_validate({
                    "sync": member.status_row["sync"], "health": member.status_row["health"],
                    "conditions": member.status_row["conditions"]})
        applied = applied_after(applied_revision=member.applied_revision,
                                desired_revision=snapshot.commit, heartbeat=heartbeat,
                                last_run=run_summary)
        status = status_after(StatusInputs(
            now=self.now(), desired_revision=snapshot.commit, applied_revision=applied,
            heartbeat=heartbeat, heartbeat_interval=self.settings.heartbeat_interval,
            last_run=run_summary, failure_count=member.failures,
            max_failures=self.max_failures, config_error=config_error), previous=previous)
        status = with_decision(status, plan=member.plan, decision=member.decision)
        await run_db.upsert_status(
            conn, member.id, sync=status.sync.value, health=status.health.value,
            conditions=[c.model_dump(mode="json") for c in status.conditions],
            desired_revision=snapshot.commit, applied_revision=applied,
            observed_sequence=None, inventory={
                "plan": member.plan_inventory.model_dump(mode="json"),
                "ansible": member.ansible_inventory.as_dict()},
            plan_hash=member.plan.hash, consecutive_failures=member.failures,
            last_run_id=member.run_id or (member.status_row or {}).get("last_run_id"))
        await mark_settled(self.redis, member.key, settled=status.converged)


async def _flush(pool: asyncpg.Pool, run_id: int,
                 pending: list[tuple[int, str | None, str, dict[str, Any]]]) -> None:
    """Write buffered events on a connection of their own (the pass's one is busy)."""
    if not pending:
        return
    batch = pending[:]
    del pending[:len(batch)]
    async with pool.acquire() as conn:
        await run_db.append_events(conn, run_id, batch)
