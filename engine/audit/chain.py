"""The audit chain of a tenant: for each merged change, who asked, who approved, what landed,
which runs applied it on which appliance, and the heartbeat that confirmed it.

One change is a merged pull request: support request (if any) -> pull
request (author) -> approvers (reviews at the merged head) -> merge commit ->
reconcile runs at that revision -> per appliance, the first heartbeat that
reported the revision as applied, and the run it named. Audit events (logins, token changes,
pushes, syncs, denials) come alongside. Read-only: nothing here writes.
"""

from __future__ import annotations

from typing import Any

import asyncpg


async def changes(conn: asyncpg.Connection, *, tenant_id: int, limit: int = 100
                  ) -> list[dict[str, Any]]:
    pulls = await conn.fetch(
        """SELECT p.id, p.number, p.title, p.branch, p.author_kind,
                  COALESCE(a.username, p.author_id) AS author, p.support_request_id,
                  p.head_revision, p.merged_revision, p.merged_at, m.username AS merged_by,
                  p.reverts
             FROM pull_requests p
             LEFT JOIN people a ON a.id::text = p.author_id
             LEFT JOIN people m ON m.id = p.merged_by
            WHERE p.tenant_id = $1 AND p.status = 'merged'
            ORDER BY p.merged_at DESC LIMIT $2""", tenant_id, limit)
    out = []
    for pull in pulls:
        commit = pull["merged_revision"]
        approvers = [r["username"] for r in await conn.fetch(
            """SELECT DISTINCT username FROM pull_reviews
                WHERE pull_id = $1 AND state = 'approve' AND head_revision = $2
                ORDER BY username""", pull["id"], pull["head_revision"])]
        runs = [dict(r) for r in await conn.fetch(
            """SELECT r.id, r.status, r.trigger, r.created_at, r.finished_at,
                      ARRAY(SELECT a.name FROM appliances a WHERE a.id = ANY(r.appliances)
                            ORDER BY a.name) AS appliances
                 FROM reconcile_runs r WHERE r.tenant_id = $1 AND r.revision = $2
                ORDER BY r.id""", tenant_id, commit)]
        # ``run``: the run the box named with it (the one that wrote the revision there,
        # even a run interrupted after it did; NULL from agents that do not say).
        confirmed = [dict(r) for r in await conn.fetch(
            """SELECT DISTINCT ON (a.name) a.name AS appliance, x.received_at AS confirmed_at,
                      x.applied_run AS run
                 FROM appliances a
                 JOIN (SELECT appliance_id, received_at, applied_revision, applied_run
                         FROM observed_history
                       UNION ALL
                       SELECT appliance_id, received_at, applied_revision, applied_run
                         FROM observed_latest
                      ) x ON x.appliance_id = a.id
                WHERE a.tenant_id = $1 AND x.applied_revision = $2
                ORDER BY a.name, x.received_at""", tenant_id, commit)]
        out.append({
            "support_request": pull["support_request_id"],
            "pull_request": {"number": pull["number"], "title": pull["title"],
                             "author": pull["author"], "author_kind": pull["author_kind"],
                             "branch": pull["branch"], "reverts": pull["reverts"]},
            "approved_by": approvers, "merged_by": pull["merged_by"],
            "merge_commit": commit, "merged_at": pull["merged_at"],
            "runs": runs, "confirmed": confirmed})
    return out


async def events(conn: asyncpg.Connection, *, tenant_id: int, limit: int = 1000
                 ) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, at, actor_kind, actor_id, action, target, outcome, details
             FROM audit_events WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2""",
        tenant_id, limit)
    return [dict(r) for r in rows]
