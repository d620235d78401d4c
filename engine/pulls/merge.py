"""Merge rules (pure) and the merge itself (pygit2, compare-and-swap on ``main``).

Rules, from ``tenant.yaml`` ``policies.pull_requests``: a pull request merges
when it is open, its checks passed at its current head, it has no conflicts
with ``main``, and it has ``required_approvals`` approvals at its current head
from operators or admins, the author's own not counting unless
``allow_self_approval``. Whoever's latest review at the head requests changes
blocks it. Pull requests authored by a customer or the assistant always need
at least one operator or admin approval, whatever the policy says.

The merge commit has ``main`` as first parent and the branch head as second,
and its message carries the trailers of docs/architecture.md's invariants
(``Pull-Request``, ``Requested-by``, ``Approved-by``, ``Merged-by``,
``Support-Request``). ``main`` moves only if it still points where the merge
started (``RepoStore.move_branch``); when a concurrent merge moved it, the
merge is redone on the new ``main`` a few times, and refused with a clear
reason if it then conflicts. Conflicts are reported with their paths and
never resolved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pygit2

from engine.errors import ConflictError
from engine.repos.reader import SnapshotReader
from engine.repos.store import MAIN, RepoStore
from schemas.config import PullRequestPolicy
from schemas.pulls import Mergeable

REVIEWER_ROLES = frozenset({"admin", "operator"})
ALWAYS_NEED_OPERATOR = frozenset({"customer", "assistant"})
CAS_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class Verdict:
    mergeable: Mergeable
    approvals: int
    required: int
    reason: str
    approvers: tuple[str, ...] = ()


def verdict(*, state: str, head: str, checks: dict[str, Any], reviews: Sequence[dict[str, Any]],
            author_id: str, author_kind: str, policy: PullRequestPolicy,
            conflicts: Sequence[str] = ()) -> Verdict:
    """Whether a pull request may merge now, and why not. Pure."""
    required = policy.required_approvals
    if author_kind in ALWAYS_NEED_OPERATOR:
        required = max(required, 1)
    latest: dict[str, dict[str, Any]] = {}
    for review in reviews:
        if review["head"] == head and review["state"] != "comment":
            latest[review["username"]] = review
    approvers = tuple(sorted(
        name for name, r in latest.items()
        if r["state"] == "approve" and r["role"] in REVIEWER_ROLES
        and (policy.allow_self_approval or str(r.get("person_id")) != author_id)))
    blocked = sorted(name for name, r in latest.items() if r["state"] == "request_changes")
    count = len(approvers)
    if state != "open":
        return Verdict(state, count, required, f"the pull request is {state}",  # type: ignore[arg-type]
                       approvers)
    if conflicts:
        return Verdict("conflicted", count, required,
                       "conflicts with main in: " + ", ".join(conflicts), approvers)
    if checks.get("head") != head or checks.get("status") in (None, "pending", "running"):
        return Verdict("checks_pending", count, required, "checks have not finished at the head",
                       approvers)
    if checks.get("status") != "passed":
        return Verdict("checks_failing", count, required, "checks failed", approvers)
    if blocked:
        return Verdict("needs_approval", count, required,
                       "changes requested by " + ", ".join(blocked), approvers)
    if count < required:
        return Verdict("needs_approval", count, required,
                       f"{count} of {required} required approvals", approvers)
    return Verdict("clean", count, required, "", approvers)


def conflicts_with(repo: pygit2.Repository, main: str, head: str) -> list[str]:
    """Paths that conflict when merging ``head`` into ``main`` (empty: merges cleanly)."""
    index = repo.merge_commits(main, head)
    return _conflict_paths(index)


def _conflict_paths(index: pygit2.Index) -> list[str]:
    if index.conflicts is None:
        return []
    paths = set()
    for ancestor, ours, theirs in index.conflicts:
        for entry in (ancestor, ours, theirs):
            if entry is not None:
                paths.add(entry.path)
    return sorted(paths)


def merge_message(*, number: int, branch: str, title: str, body: str, requested_by: str,
                  approvers: Sequence[str], merged_by: str, support_request: int | None) -> str:
    lines = [f"Merge pull request #{number} from {branch}", "", title]
    if body.strip():
        lines += ["", body.strip()]
    lines += ["", f"Pull-Request: #{number}", f"Requested-by: {requested_by}"]
    lines += [f"Approved-by: {name}" for name in approvers]
    lines.append(f"Merged-by: {merged_by}")
    if support_request is not None:
        lines.append(f"Support-Request: #{support_request}")
    return "\n".join(lines) + "\n"


def merge_into_main(store: RepoStore, reader: SnapshotReader, *, tenant: str, head: str,
                    message: str, author: pygit2.Signature) -> tuple[str, str]:
    """Merge ``head`` into ``main``; returns (old main, merge commit).

    ``ConflictError`` for conflicts (with paths), for a head already in main, or when
    ``main`` kept moving; ``ConfigError`` when the merged tree does not validate.
    """
    repo = store.open(tenant)
    committer = pygit2.Signature("Hearth", "hearth@hearth.invalid")
    for _ in range(CAS_ATTEMPTS):
        main = store.head(tenant)
        if main is None:
            raise ConflictError("the repository has no main branch")
        if main == head or repo.descendant_of(main, head):
            raise ConflictError("nothing to merge: the branch is already in main")
        index = repo.merge_commits(main, head)
        conflicts = _conflict_paths(index)
        if conflicts:
            raise ConflictError("conflicts with main in: " + ", ".join(conflicts)
                                + "; merge main into the branch, resolve and push")
        tree = index.write_tree(repo)
        commit = str(repo.create_commit(None, author, committer, message, tree,
                                        [pygit2.Oid(hex=main), pygit2.Oid(hex=head)]))
        reader.load(repo, commit, tenant=tenant)  # a main that would not apply never lands
        try:
            store.move_branch(tenant, branch=MAIN, new=commit, expected=main)
        except ConflictError:
            continue  # another merge landed first: merge again onto the new main
        return main, commit
    raise ConflictError("main kept moving under concurrent merges; try again")
