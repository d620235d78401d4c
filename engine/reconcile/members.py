"""The values of a reconcile pass: what was loaded per appliance, and what came of it.

``ApplianceInputs`` is everything the pass read about one appliance before
planning (frozen: the plan-and-decide step is a function of it). ``Member``
is the appliance's place in a pass as the worker sees it: the claim it came
from, and the results the pass fills in (plan, decision, run, ``Outcome``).
A failed run is a ``TransientFailure`` (Ansible could not finish: a host
failed or was unreachable, the runner could not start; retrying may help) or
a ``PermanentFailure`` (the desired state cannot be rendered, e.g. a vault
value that does not decrypt: only a new revision helps). Both are retried
with backoff and count towards Stalled; the status message says which.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from engine.execution.extravars import ManagedInventory, managed_inventory
from engine.planning.plan import ApplyResult, next_inventory
from engine.planning.policy import AppliedRun, Decision
from engine.reconcile.queue import Claim
from schemas.config import DesiredAppliance
from schemas.heartbeat import ObservedState
from schemas.plan import Inventory, Plan
from schemas.status import ApplianceStatus


class Outcome(StrEnum):
    """What the worker tells the queue about one appliance after a pass."""

    DONE = "done"
    """Settled for now: converged, nothing to do, or not Hearth's to do."""
    RETRY = "retry"
    """The run failed on it: back off and try again (counted towards Stalled)."""
    SKIPPED = "skipped"
    """Not reached yet; becomes DONE when the pass ends normally."""
    BUSY = "busy"
    """Another worker holds its lock: re-queue shortly."""


@dataclass(frozen=True, slots=True)
class TransientFailure:
    """The run did not finish on the appliance; retrying may help."""

    message: str


@dataclass(frozen=True, slots=True)
class PermanentFailure:
    """The desired state cannot be applied as it is; a new revision must fix it."""

    message: str


Failure = TransientFailure | PermanentFailure


@dataclass(frozen=True, slots=True)
class ApplianceInputs:
    """What a pass read about one appliance before planning."""

    id: uuid.UUID
    desired: DesiredAppliance
    observed: ObservedState | None
    received_at: datetime | None
    inventory: Inventory
    """What Hearth manages on it, as the planner keys it (removals come from here)."""
    managed: ManagedInventory
    """The same, as the executor renders removals and kept orphans."""
    applied_revision: str | None
    failures: int
    previous: ApplianceStatus | None
    last_run_id: int | None
    requests: tuple[dict[str, Any], ...]
    """Queued manual syncs of it, claimed by this pass."""
    reported_run: int | None = None
    """The run its latest heartbeat says last converged it."""
    last_applied: AppliedRun | None = None
    """The last run that succeeded on it."""

    @property
    def key(self) -> str:
        return f"{self.desired.tenant}/{self.desired.name}"

    @property
    def manual(self) -> bool:
        return bool(self.requests)

    @property
    def dry_run(self) -> bool:
        return any(r["check_mode"] for r in self.requests)


@dataclass
class Member:
    """One appliance inside a pass: its claim, its inputs, and what happened."""

    name: str
    claim: Claim | None
    row: dict[str, Any] | None = None
    inputs: ApplianceInputs | None = None
    plan: Plan | None = None
    decision: Decision | None = None
    run_id: int | None = None
    run_outcome: str | None = None
    """``succeeded`` or ``failed`` when a run converged it in this pass."""
    failure: Failure | None = None
    applied_revision: str | None = None
    failures: int = 0
    inventory: Inventory = field(default_factory=Inventory)
    managed: ManagedInventory = field(default_factory=ManagedInventory)
    outcome: Outcome = Outcome.SKIPPED
    run_error: str = ""
    """Why the pass failed for it, for the queue's backoff record."""
    awaiting: AppliedRun | None = None
    """The run its latest heartbeat predates (``policy.awaiting_confirmation``)."""

    @property
    def id(self) -> uuid.UUID:
        assert self.row is not None
        return self.row["id"]

    @property
    def desired(self) -> DesiredAppliance | None:
        return self.inputs.desired if self.inputs is not None else None

    @property
    def observed(self) -> ObservedState | None:
        return self.inputs.observed if self.inputs is not None else None

    def loaded(self, inputs: ApplianceInputs) -> None:
        """Start the pass's results from what was loaded."""
        self.inputs = inputs
        self.applied_revision = inputs.applied_revision
        self.failures = 0 if inputs.manual else inputs.failures
        self.inventory = inputs.inventory
        self.managed = inputs.managed

    def ran(self, *, revision: str, failure: Failure | None) -> None:
        """Record a run of this member's plan at ``revision``: on success it is at that
        revision and Hearth manages what it now lists; on failure the failure counts and
        the removals of the failed domains stay in the inventory to be retried."""
        assert self.desired is not None and self.plan is not None
        if failure is None:
            self.run_outcome, self.outcome = "succeeded", Outcome.DONE
            self.applied_revision, self.failures = revision, 0
            self.inventory = next_inventory(self.inventory, self.desired, ApplyResult(),
                                            plan=self.plan)
            self.managed = managed_inventory(self.desired, self.managed)
            return
        self.run_outcome, self.outcome = "failed", Outcome.RETRY
        self.failure, self.run_error = failure, failure.message
        self.failures += 1
        self.inventory = next_inventory(
            self.inventory, self.desired,
            ApplyResult(failed_domains=frozenset(self.plan.domains_changed)), plan=self.plan)


@dataclass(frozen=True)
class PassReport:
    """What one pass did, for the worker's logs and for tests."""

    tenant: str
    revision: str | None
    run_ids: list[int]
    outcomes: dict[str, Outcome]
    config_error: str | None = None
