"""Branches of a tenant repo and what a pull request changes: names, diffs. pygit2 only."""

from __future__ import annotations

from typing import Any

import pygit2

from engine.errors import InvalidInputError, RevisionError
from engine.repos.reader import resolve_revision
from schemas.pulls import BranchName  # noqa: F401 (the pattern API bodies validate with)

MAIN_BRANCH = "main"


def ref_of(branch: str) -> str:
    """``refs/heads/<branch>``, through the same check as every other revision."""
    if branch.startswith("refs/"):
        raise InvalidInputError(f"give a branch name, not a ref: {branch!r}")
    return f"refs/heads/{branch}"


def head_of(repo: pygit2.Repository, branch: str) -> str | None:
    try:
        return resolve_revision(repo, ref_of(branch))
    except RevisionError as exc:
        if "does not exist" in str(exc):
            return None
        raise


def merge_base(repo: pygit2.Repository, a: str, b: str) -> str | None:
    found = repo.merge_base(a, b)
    return None if found is None else str(found)


def diff(repo: pygit2.Repository, base: str, head: str) -> tuple[list[dict[str, Any]], str]:
    """Files and unified patch of ``head`` against its merge base with ``base`` (what the
    branch itself changes, as a pull request shows it)."""
    since = merge_base(repo, base, head) or base
    changes = repo.diff(repo[since], repo[head], context_lines=3)
    changes.find_similar()
    status = {pygit2.enums.DeltaStatus.ADDED: "added", pygit2.enums.DeltaStatus.DELETED: "deleted",
              pygit2.enums.DeltaStatus.RENAMED: "renamed"}
    files = []
    for patch in changes:
        delta = patch.delta
        _, additions, deletions = patch.line_stats
        files.append({"path": delta.new_file.path, "old_path": delta.old_file.path,
                      "status": status.get(delta.status, "modified"),
                      "additions": additions, "deletions": deletions})
    return files, changes.patch or ""
