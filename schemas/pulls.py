"""Pull requests, their checks and reviews, as the API and the CLI see them. No I/O.

A pull request proposes moving ``target`` (always ``main`` today) to include
``source``. Its ``checks`` run asynchronously when it opens and on every push
to its branch: ``validation`` (the reader's issues, each file:line:col) and
``plan_preview`` (per affected appliance, what merging would change against
its last observed state, in domain terms, and when the tenant's maintenance
windows would let it apply). ``mergeable`` is derived from state, checks and
reviews: ``clean``, ``conflicted``, ``checks_pending``, ``checks_failing``,
``needs_approval``, or ``closed`` / ``merged`` once it is no longer open.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

PullState = Literal["open", "merged", "closed"]
Mergeable = Literal["clean", "conflicted", "checks_pending", "checks_failing",
                    "needs_approval", "merged", "closed"]
CheckStatus = Literal["pending", "running", "passed", "failed"]
ReviewState = Literal["approve", "request_changes", "comment"]



def _check_branch(value: str) -> str:
    if ".." in value or "//" in value or value.endswith(("/", ".", ".lock")):
        raise ValueError(f"{value!r} is not a branch name git accepts")
    return value


BranchName = Annotated[str, Field(min_length=1, max_length=200,
                                  pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"),
                       AfterValidator(_check_branch)]


class _Request(BaseModel):
    # strict: a request that says "1" where a number belongs is refused, not coerced
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class PullCreate(_Request):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(max_length=20_000)] = ""
    source: BranchName
    """The branch with the change (pushed over git, or written with PUT …/files)."""
    target: Literal["main"] = "main"
    labels: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(
        default_factory=list, max_length=20)


class ReviewCreate(_Request):
    event: ReviewState
    body: Annotated[str, Field(max_length=20_000)] = ""


class EditOperation(_Request):
    op: Literal["set", "append", "delete"]
    path: list[str | int] = Field(min_length=1, max_length=20)
    """Keys, list indices, or ``name=<value>`` selecting the list item with that name."""
    value: Any = None


class FileWrite(_Request):
    """A commit of one file on a branch: the whole new ``content``, or round-trip ``edits``."""

    message: Annotated[str, Field(min_length=1, max_length=2000)]
    content: Annotated[str, Field(max_length=1_000_000)] | None = None
    edits: list[EditOperation] | None = Field(default=None, max_length=100)
    expected_head: Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")] | None = None
    """The branch tip the edit was made against (compare-and-swap); None: the branch must
    not exist yet and is created from main."""


class FileWritten(BaseModel):
    branch: str
    path: str
    commit: str


class Issue(BaseModel):
    file: str
    line: int
    column: int
    message: str


class ValidationCheck(BaseModel):
    status: CheckStatus
    issues: list[Issue] = []


class AppliancePreview(BaseModel):
    appliance: str
    registered: bool
    """False: defined in git but no appliance registered under that name yet."""
    changes: list[str]
    """In domain terms: ``adds user maria to group reception on front-office``."""
    counts: dict[str, int]
    """add, modify, remove."""
    window: str
    """When it would apply: ``at once (auto_sync)``, a maintenance window, or why not."""


class PlanPreviewCheck(BaseModel):
    status: CheckStatus
    appliances: list[AppliancePreview] = []
    removed_appliances: list[str] = []
    unaffected: int = 0
    """Appliances of the tenant whose desired state the change does not touch."""


class Checks(BaseModel):
    head: str | None = None
    """The commit the checks ran on; a push makes them stale and re-runs them."""
    status: CheckStatus = "pending"
    validation: ValidationCheck = ValidationCheck(status="pending")
    plan_preview: PlanPreviewCheck = PlanPreviewCheck(status="pending")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None


class Review(BaseModel):
    username: str
    role: str
    state: ReviewState
    body: str
    head: str
    """Approvals count only at the pull request's current head."""
    created_at: datetime


class PullOut(BaseModel):
    number: int
    title: str
    body: str
    author: str
    author_kind: str
    source: str
    target: str
    base: str
    """``main`` when the pull request opened (its diff is against the merge base)."""
    head: str
    state: PullState
    mergeable: Mergeable
    approvals: int
    required_approvals: int
    checks: Checks
    reviews: list[Review] = []
    labels: list[str] = []
    merge_commit: str | None = None
    reverts: int | None = None
    support_request: int | None = None
    created_at: datetime
    updated_at: datetime
    merged_at: datetime | None = None
    closed_at: datetime | None = None


class PullDiff(BaseModel):
    number: int
    base: str
    head: str
    files: list[dict[str, Any]]
    """path, status (added, modified, deleted), additions, deletions."""
    patch: str


class MergeResult(BaseModel):
    number: int
    state: PullState
    merge_commit: str
    queued: list[str]
    """Appliances queued for reconcile by the merge."""
