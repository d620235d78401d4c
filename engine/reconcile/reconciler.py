"""One reconcile pass over some appliances of one tenant: the ordered steps.

The worker hands a ``Reconciler`` a tenant and the appliance names it claimed
from the queue. The pass is level-triggered: it trusts nothing from the queue
but the names, and re-reads everything:

1. **Lock.** Take each appliance's PostgreSQL advisory lock on a connection
   held for the whole pass (docs/architecture.md, invariant 4: the lock dies with the
   worker). An appliance locked elsewhere is handed back to the queue. With
   the locks held, any run still marked ``running`` for them belongs to a dead
   worker and is marked ``interrupted`` and its processes are killed
   (``engine.execution.processes``).
2. **Source.** ``DesiredSource.select``: the head of the tenant's ``main``; an
   invalid revision is recorded on the tenant and never applied, the pass
   continues with the tenant's last good revision (invariant 7).
3. **Load.** Per appliance, one frozen ``ApplianceInputs``: desired state at
   that revision, observed state from its latest heartbeat, its stored status
   and inventory, and the queued manual syncs it claims.
4. **Plan and decide.** ``DesiredSource.plan`` (pure, desired form cached) and
   ``planning.policy.choose``: auto_sync for a new revision, self_heal for
   drift, maintenance windows, manual overrides, dry runs; the same failure
   repeated ``max_failures`` times stalls the appliance until a new revision
   or a manual sync (the queue remembers failures per revision and plan hash).
5. **Run.** The appliances that may run are converged in ONE ansible-runner
   run, limited to them and to the domains their plans touch; agents never
   heard from get a fresh token; events stream into ``run_events``. A dry run
   (manual) runs alone in check mode and changes nothing but its run record.
6. **Record.** Per-host results go on the run row; each appliance's next
   inventory, revision and failure count follow (``Member.ran``).
7. **Status.** When a run row is created its appliances' status is written as
   ``Progressing`` / ``RunInProgress`` naming the run; in a ``finally``, every
   appliance's status is recomputed from what is now known
   (``planning.health``) and stored with its inventory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

from engine import tenant_vault
from engine.db import appliances as appliance_db
from engine.db import runs as run_db
from engine.db import tenants as tenant_db
from engine.errors import ExecutionError, HearthError, InvalidInputError, NotFoundError
from engine.execution.ansible import AnsibleExecutor, RunResult, run_record
from engine.execution.events import Event, EventStream
from engine.execution.extravars import (
    ManagedInventory,
    Secrets,
    appliance_vars,
    build_extravars,
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
from engine.planning.policy import AppliedRun, awaiting_confirmation, choose
from engine.reconcile.members import (
    ApplianceInputs,
    Failure,
    Member,
    Outcome,
    PassReport,
    PermanentFailure,
    TransientFailure,
)
from engine.reconcile.queue import ReconcileQueue
from engine.reconcile.source import DesiredSource, stored_inventory
from engine.reconcile.triggers import mark_settled
from engine.repos.reader import DesiredSnapshot, SnapshotReader
from engine.repos.store import RepoStore
from engine.settings import Settings
from schemas.plan import Plan
from schemas.status import ApplianceStatus

log = logging.getLogger("hearth.reconcile")

LOCK_NAMESPACE = 0x4E4152  # the first int of every appliance advisory lock
LOCK_SQL = "SELECT pg_try_advisory_lock($1::int, hashtext($2::text))"


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
    # The pass: lock, source, then the steps below
    # ------------------------------------------------------------------ #

    async def reconcile(self, tenant: str, members: list[Member]) -> PassReport:
        def report(revision: str | None = None, run_ids: list[int] | None = None,
                   config_error: str | None = None) -> PassReport:
            return PassReport(tenant, revision, run_ids or [],
                              {m.name: m.outcome for m in members}, config_error)

        async with self.pool.acquire() as conn:
            locked: list[Member] = []
            try:
                tenant_row = await tenant_db.get_tenant_by_name(conn, tenant)
                if tenant_row is None:
                    for m in members:
                        m.outcome = Outcome.DONE  # a key for a tenant that no longer exists
                    return report()
                locked = [m for m in members if await self._lock(conn, tenant_row, m)]
                if not locked:
                    return report()
                await self._interrupt_stale(conn, locked)
                selection = await self.source.select(conn, tenant_row)
                snapshot = selection.snapshot
                if snapshot is None:
                    for m in locked:
                        m.outcome = Outcome.DONE
                    return report(config_error=selection.config_error)
                run_ids: list[int] = []
                try:
                    run_ids = await self._converge(conn, tenant_row, snapshot, locked,
                                                   selection.config_error)
                finally:
                    for member in locked:
                        await self._write_status(conn, snapshot, member,
                                                 selection.config_error)
                return report(snapshot.commit, run_ids, selection.config_error)
            finally:
                for member in locked:
                    await conn.execute("SELECT pg_advisory_unlock($1::int, hashtext($2::text))",
                                       LOCK_NAMESPACE, str(member.id))

    async def _lock(self, conn: asyncpg.Connection, tenant_row: dict[str, Any],
                    member: Member) -> bool:
        try:
            member.row = await appliance_db.get_appliance_by_name(
                conn, tenant_id=tenant_row["id"], name=member.name)
        except NotFoundError:
            member.outcome = Outcome.DONE  # in git but not registered (or deleted): not ours
            return False
        got = await conn.fetchval(LOCK_SQL, LOCK_NAMESPACE, str(member.row["id"]))
        if not got:
            member.outcome = Outcome.BUSY
            return False
        return True

    async def _interrupt_stale(self, conn: asyncpg.Connection, locked: list[Member]) -> None:
        interrupted = await run_db.interrupt_stale(conn, [m.id for m in locked])
        if interrupted:
            log.warning("marked runs %s interrupted (their worker died)", interrupted)
            killed = kill_orphans(self.executor.runs_dir, interrupted)
            if killed:
                log.warning("stopped orphaned ansible processes %s", killed)

    async def _converge(self, conn: asyncpg.Connection, tenant_row: dict[str, Any],
                        snapshot: DesiredSnapshot, locked: list[Member],
                        config_error: str | None) -> list[int]:
        run_ids: list[int] = []
        for member in locked:
            inputs = await self._load(conn, snapshot, member)
            if inputs is None:
                member.outcome = Outcome.DONE  # registered but no longer in git: nothing to do
                continue
            member.loaded(inputs)
            await self._plan_and_decide(conn, snapshot, member, inputs)
        runnable = [m for m in locked if m.decision is not None and m.decision.run]
        for member in [m for m in runnable if m.inputs and m.inputs.dry_run]:
            run_ids.append(await self._dry_run(conn, snapshot, member))
        batch = [m for m in runnable if m.inputs and not m.inputs.dry_run]
        if batch:
            run_ids.append(await self._run(conn, tenant_row, snapshot, batch, config_error))
        for member in locked:
            if member.outcome is Outcome.SKIPPED:
                member.outcome = Outcome.DONE
        return run_ids

    # ------------------------------------------------------------------ #
    # Load, plan and decide
    # ------------------------------------------------------------------ #

    async def _load(self, conn: asyncpg.Connection, snapshot: DesiredSnapshot,
                    member: Member) -> ApplianceInputs | None:
        try:
            desired = snapshot.desired(member.name)
        except NotFoundError:
            return None
        seen = await self.source.observation(conn, member.id)
        status_row = await run_db.get_status(conn, member.id) or {}
        applied_row = await run_db.last_applied_run(conn, member.id)
        previous = None
        if status_row.get("conditions"):
            with contextlib.suppress(ValueError):
                previous = ApplianceStatus.model_validate({
                    "sync": status_row["sync"], "health": status_row["health"],
                    "conditions": status_row["conditions"]})
        return ApplianceInputs(
            id=member.id, desired=desired, observed=seen.observed, received_at=seen.received_at,
            inventory=stored_inventory(status_row),
            managed=ManagedInventory.from_dict((status_row.get("inventory") or {}).get("ansible")),
            applied_revision=status_row.get("applied_revision"),
            failures=status_row.get("consecutive_failures") or 0, previous=previous,
            last_run_id=status_row.get("last_run_id"),
            requests=tuple(await run_db.claim_queued(conn, member.id)),
            reported_run=seen.applied_run,
            last_applied=AppliedRun(**applied_row) if applied_row else None)

    async def _plan_and_decide(self, conn: asyncpg.Connection, snapshot: DesiredSnapshot,
                               member: Member, inputs: ApplianceInputs) -> None:
        now = self.now()
        plan = member.plan = self.source.plan(
            desired=inputs.desired, revision=snapshot.commit, observed=inputs.observed,
            inventory=inputs.inventory, now=now)
        if inputs.manual:
            await self.queue.reset(inputs.key)
        stalled = not inputs.manual and inputs.failures >= self.max_failures and \
            await self.queue.stalled(inputs.key, revision=snapshot.commit, plan_hash=plan.hash)
        if awaiting_confirmation(applied=inputs.last_applied, reported_run=inputs.reported_run,
                                 received_at=inputs.received_at, revision=snapshot.commit,
                                 heartbeat_interval=self.settings.heartbeat_interval):
            member.awaiting = inputs.last_applied
        member.decision = choose(plan=plan, policy=inputs.desired.policies,
                                 applied_revision=inputs.applied_revision, manual=inputs.manual,
                                 dry_run=inputs.dry_run, stalled=stalled, now=now,
                                 awaiting=member.awaiting)
        if inputs.manual and not member.decision.run:
            # Nothing to do: close the requests so the caller sees an answer.
            for request in inputs.requests:
                await run_db.finish_run(conn, request["id"], status="succeeded",
                                        results={member.name: {"plan": "empty"}}, changed=0,
                                        failed=0)

    # ------------------------------------------------------------------ #
    # Run
    # ------------------------------------------------------------------ #

    async def _run(self, conn: asyncpg.Connection, tenant_row: dict[str, Any],
                   snapshot: DesiredSnapshot, batch: list[Member], config_error: str | None
                   ) -> int:
        tenant = tenant_row["name"]
        domains = sorted({d for m in batch for d in (m.plan.domains_changed if m.plan else ())})
        if any(m.observed is None for m in batch):
            domains.append("agent")
        plan_doc = {m.name: m.plan.model_dump(mode="json") for m in batch if m.plan}
        requests = [r for m in batch if m.inputs for r in m.inputs.requests]
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
            if member.plan is not None:  # always, for a member that may run
                # Progressing / RunInProgress from the moment the run row exists.
                await self._write_status(conn, snapshot, member, config_error,
                                         running=RunSummary(outcome="running",
                                                            revision=snapshot.commit,
                                                            plan=member.plan, run_id=run_id))
            # The run's last task reports (it names this run): unsettled, the heartbeat
            # trigger queues the key for it, and the pass after this one confirms the run.
            await mark_settled(self.redis, member.inputs.key if member.inputs else
                               f"{tenant}/{member.name}", settled=False)
        log.info("run %s: tenant %s, %s, revision %s, domains %s", run_id, tenant,
                 [m.name for m in batch], snapshot.commit[:12], domains)
        result, error = await self._execute(
            conn, run_id=run_id, tenant=tenant, batch=batch, revision=snapshot.commit,
            domains=domains or None, check=False)
        await self._record(conn, run_id, batch, result, error, snapshot)
        return run_id

    async def _dry_run(self, conn: asyncpg.Connection, snapshot: DesiredSnapshot,
                       member: Member) -> int:
        assert member.inputs is not None
        request = next(r for r in member.inputs.requests if r["check_mode"])
        run_id = request["id"]
        plan_doc = {member.name: member.plan.model_dump(mode="json")} if member.plan else {}
        await run_db.start_run(conn, run_id, worker_id=self.worker_id, revision=snapshot.commit,
                               plan=plan_doc, appliance_ids=[member.id])
        result, error = await self._execute(
            conn, run_id=run_id, tenant=member.inputs.desired.tenant, batch=[member],
            revision=snapshot.commit, domains=None, check=True)
        status = "succeeded" if result is not None and result.succeeded else "failed"
        await run_db.finish_run(conn, run_id, status=status,
                                results=run_record(result, [member.name]),
                                changed=result.changed if result else 0,
                                failed=result.failed_hosts if result else 0,
                                error=error.message if error else None)
        member.outcome = Outcome.DONE
        return run_id

    async def _execute(self, conn: asyncpg.Connection, *, run_id: int, tenant: str,
                       batch: list[Member], revision: str, domains: list[str] | None,
                       check: bool) -> tuple[RunResult | None, Failure | None]:
        """Run Ansible for ``batch`` while streaming its events; never raises for a bad run."""

        async def write(events: list[Event]) -> None:
            async with self.pool.acquire() as events_conn:  # the pass's one is busy
                await run_db.append_events(events_conn, run_id, events)

        async def keep_leases() -> None:
            while True:
                await asyncio.sleep(max(self.queue.lease_ms / 3000, 1))
                for member in batch:
                    if member.claim is not None:
                        await self.queue.extend(member.claim)

        stream = EventStream(write)
        leases = asyncio.create_task(keep_leases())
        failure: Failure | None = None
        result: RunResult | None = None
        started = time.monotonic()
        try:
            async with stream.running():
                secrets = [await self._decrypt(m) for m in batch]  # refused values first
                tokens = await self._bootstrap_tokens(conn, batch)
                variables = [self._extravars(m, revision, secret, tokens.get(m.name),
                                             None if check else run_id)
                             for m, secret in zip(batch, secrets, strict=True)]
                result = await self.executor.run_async(
                    run_id=str(run_id), extravars=build_extravars(variables),
                    targets=[self._target(tenant, m) for m in batch],
                    playbook="site", domains=domains, limit=[m.name for m in batch],
                    check=check, on_event=stream.on_event)
            if not result.succeeded:
                failed = [h for h, r in result.hosts.items() if not r.succeeded]
                failure = TransientFailure(
                    f"ansible run {result.status}; failed hosts: {', '.join(failed)}")
        except InvalidInputError as exc:
            failure = PermanentFailure(str(exc))
        except (ExecutionError, HearthError) as exc:
            failure = TransientFailure(str(exc))
        finally:
            leases.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await leases
        log.info("run %s finished in %.1f s: %s", run_id, time.monotonic() - started,
                 "ok" if failure is None else failure)
        return result, failure

    async def _bootstrap_tokens(self, conn: asyncpg.Connection, batch: list[Member]
                                ) -> dict[str, str]:
        """A fresh API token for each agent never heard from (the run installs it; nobody
        else sees it). Writes the token's hash to the database."""
        return {m.name: await appliance_db.rotate_token(conn, appliance_id=m.id,
                                                        secret_key=self.settings.secret_key)
                for m in batch if m.observed is None}

    def _target(self, tenant: str, member: Member) -> Target:
        """A root of this machine, else the address recorded at registration: never the
        YAML's ``hostname``, which the tenant controls (docs/architecture.md)."""
        root = self.roots_dir / tenant / member.name
        if root.is_dir():
            return Target(name=member.name, root=root)
        assert member.row is not None
        return Target(name=member.name, address=member.row["address"])

    async def _decrypt(self, member: Member) -> tuple[dict[str, str], dict[str, str]]:
        """Password hashes and Samba passwords of ``member`` from the vault values, with
        the tenant's own vault passwords (``engine.tenant_vault``: the current one, and the
        one before during a rotation's transition)."""
        desired = member.desired
        assert desired is not None
        async with self.pool.acquire() as conn:
            passwords = await tenant_vault.passwords_for(conn, self.settings,
                                                         tenant=desired.tenant)

        def decrypt_all() -> tuple[dict[str, str], dict[str, str]]:
            # vault decryption is PBKDF2, CPU-bound: one thread hop for both kinds
            def decrypt(value: str) -> str:
                return tenant_vault.decrypt_with(value, passwords)
            return password_hashes(desired, decrypt), samba_passwords(desired, decrypt)

        return await asyncio.to_thread(decrypt_all)

    def _extravars(self, member: Member, revision: str,
                   secrets: tuple[dict[str, str], dict[str, str]], token: str | None,
                   run_id: int | None) -> dict[str, Any]:
        assert member.desired is not None
        hashes, smb_passwords = secrets
        return appliance_vars(member.desired, previous=member.managed,
                              secrets=Secrets(password_hashes=hashes,
                                              samba_passwords=smb_passwords, agent_token=token),
                              api_url=self.settings.api_url, revision=revision, run=run_id,
                              agent_interval_seconds=self.settings.agent_interval_seconds)

    # ------------------------------------------------------------------ #
    # Record, status
    # ------------------------------------------------------------------ #

    async def _record(self, conn: asyncpg.Connection, run_id: int, batch: list[Member],
                      result: RunResult | None, failure: Failure | None,
                      snapshot: DesiredSnapshot) -> None:
        await run_db.finish_run(conn, run_id, status="succeeded" if failure is None else "failed",
                                results=run_record(result, [m.name for m in batch]),
                                changed=result.changed if result else 0,
                                failed=result.failed_hosts if result else 0,
                                error=failure.message if failure else None)
        for member in batch:
            host = result.hosts.get(member.name) if result else None
            member.ran(revision=snapshot.commit, failure=None if (
                host is not None and host.succeeded and result is not None
                and result.status == "successful") else (
                failure or TransientFailure("the run failed on this appliance")))

    async def _write_status(self, conn: asyncpg.Connection, snapshot: DesiredSnapshot,
                            member: Member, config_error: str | None, *,
                            running: RunSummary | None = None) -> None:
        inputs, plan = member.inputs, member.plan
        if inputs is None or plan is None:
            return
        last = await run_db.last_finished_run(conn, member.id) if running is None else None
        run_summary = running
        if last is not None:
            plan_json = (last["plan"] or {}).get(member.name)
            run_summary = RunSummary(
                outcome=last["status"], revision=last["revision"],
                plan=Plan.model_validate(plan_json) if plan_json else plan,
                finished_at=last["finished_at"], error=last["error"] or "", run_id=last["id"])
        heartbeat = None
        if inputs.received_at is not None:
            heartbeat = HeartbeatSummary(received_at=inputs.received_at, plan=plan,
                                         reported_run=inputs.reported_run,
                                         stale=member.awaiting is not None)
        applied = applied_after(applied_revision=member.applied_revision,
                                desired_revision=snapshot.commit, heartbeat=heartbeat,
                                last_run=run_summary)
        status = status_after(StatusInputs(
            now=self.now(), desired_revision=snapshot.commit, applied_revision=applied,
            heartbeat=heartbeat, heartbeat_interval=self.settings.heartbeat_interval,
            last_run=run_summary, failure_count=member.failures,
            max_failures=self.max_failures, config_error=config_error), previous=inputs.previous)
        status = with_decision(status, plan=plan, decision=member.decision)
        await run_db.upsert_status(
            conn, member.id, sync=status.sync.value, health=status.health.value,
            conditions=[c.model_dump(mode="json") for c in status.conditions],
            desired_revision=snapshot.commit, applied_revision=applied,
            observed_sequence=None, inventory={
                "plan": member.inventory.model_dump(mode="json"),
                "ansible": member.managed.as_dict()},
            plan_hash=plan.hash, consecutive_failures=member.failures,
            last_run_id=member.run_id or inputs.last_run_id)
        await mark_settled(self.redis, inputs.key, settled=status.converged)
