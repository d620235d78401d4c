"""Branches and pull requests every API test starts with (tenant acme).

- ``#1`` from ``ready``: checks passed at its head, approved by admin: mergeable;
- ``#2`` from ``to-close`` and ``#3`` from ``to-review``: open, checks not run;
- branch ``topic-new`` has a change and no pull request (``POST …/pulls`` opens it).
"""

from __future__ import annotations

import asyncpg

from engine.repos.store import RepoStore, signature
from engine.settings import Settings

BRANCHES = ("ready", "to-close", "to-review", "topic-new")


async def seed_pulls(conn: asyncpg.Connection, settings: Settings, *, tenant_id: int,
                     main: str, author_id: int, approver_id: int) -> None:
    store = RepoStore(settings.repos_dir)
    author = signature("Olga Operator", "olga@example.org")
    heads = {}
    for branch in BRANCHES:
        # commit_files builds on ``expected_head`` and moves the branch from it: start each
        # branch at main, then commit on it
        store.move_branch("acme", branch=f"refs/heads/{branch}", new=main, expected=None)
        heads[branch] = store.commit_files(
            "acme", {"README.md": f"{branch}\n".encode()}, message=f"{branch} change",
            author=author, expected_head=main, branch=f"refs/heads/{branch}")
    for number, branch in enumerate(("ready", "to-close", "to-review"), start=1):
        checks = {"head": heads[branch], "status": "passed"} if branch == "ready" else {}
        pull_id = await conn.fetchval(
            """INSERT INTO pull_requests (tenant_id, number, title, branch, base_revision,
                                          head_revision, author_kind, author_id, checks)
               VALUES ($1, $2, $3, $4, $5, $6, 'operator', $7, $8) RETURNING id""",
            tenant_id, number, f"{branch} change", branch, main, heads[branch], str(author_id),
            checks)
        if branch == "ready":
            await conn.execute(
                """INSERT INTO pull_reviews (pull_id, person_id, username, role, state,
                                             head_revision)
                   VALUES ($1, $2, 'admin', 'admin', 'approve', $3)""",
                pull_id, approver_id, heads[branch])
