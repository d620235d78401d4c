"""Git history of a tenant's ``main``: commits with author, trailers and changed paths.

Pure over a pygit2 repository. ``path`` keeps commits that changed that path;
``appliance`` keeps commits that changed anything the appliance's desired
state depends on (its own file and the shared ``tenant.yaml``, ``users.yaml``,
``groups.yaml``: the same rule the reconcile triggers use).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pygit2

from schemas.config import APPLIANCES_DIR, GROUPS_FILE, TENANT_FILE, USERS_FILE

SHARED = (TENANT_FILE, USERS_FILE, GROUPS_FILE)


def trailers(message: str) -> dict[str, list[str]]:
    """``Key: value`` lines of the message's last paragraph (git's trailer block)."""
    block = message.strip().split("\n\n")[-1]
    found: dict[str, list[str]] = {}
    for line in block.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key and " " not in key and key[0].isupper():
            found.setdefault(key, []).append(value.strip())
    return found


def changed_paths(repo: pygit2.Repository, commit: pygit2.Commit) -> list[str]:
    parent = commit.parents[0].tree if commit.parents else None
    diff = (repo.diff(parent, commit.tree) if parent is not None
            else commit.tree.diff_to_tree(swap=True))
    return sorted({d.delta.new_file.path for d in diff} | {d.delta.old_file.path for d in diff})


def history(repo: pygit2.Repository, head: str, *, path: str | None = None,
            appliance: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Commits reachable from ``head`` (newest first, first parents: what main was)."""
    wanted: set[str] | None = None
    if path is not None:
        wanted = {path}
    if appliance is not None:
        wanted = (wanted or set()) | {f"{APPLIANCES_DIR}/{appliance}.yaml", *SHARED}
    walker = repo.walk(pygit2.Oid(hex=head), pygit2.enums.SortMode.TOPOLOGICAL)
    walker.simplify_first_parent()
    out = []
    for commit in walker:
        paths = changed_paths(repo, commit)
        if wanted is not None and not wanted & set(paths):
            continue
        out.append({
            "commit": str(commit.id), "parents": [str(p) for p in commit.parent_ids],
            "author": commit.author.name, "author_email": commit.author.email,
            "committed_at": datetime.fromtimestamp(commit.commit_time, UTC),
            "subject": commit.message.split("\n", 1)[0], "message": commit.message,
            "trailers": trailers(commit.message), "paths": paths})
        if len(out) >= limit:
            break
    return out
