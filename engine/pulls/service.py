"""The pull request operations the API and the CLI call: rows + git + checks + reconcile.

Thin on purpose: the rules are in ``merge.verdict``, the git work in
``branches``/``merge``/``revert``, the checks in ``checks``. Git work runs in
threads (pygit2 releases the GIL for the heavy parts). Checks run as tasks of
this process: they are stored with the head they ran on, so a push (which
changes the head) makes them stale, and a pull request whose checks are
missing or stale for its head gets them scheduled again when it is read, so a
restart mid-check loses nothing but time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import asyncpg
import pygit2

from engine.db import audit
from engine.db import pulls as pull_db
from engine.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError
from engine.pulls import branches, checks, merge, revert
from engine.reconcile.queue import ReconcileQueue
from engine.reconcile.triggers import enqueue_changed
from engine.repos.edit import Edit, check_document, edit_yaml
from engine.repos.reader import SnapshotReader
from engine.repos.store import MAIN, RepoStore
from schemas.config import PullRequestPolicy
from schemas.pulls import (
    Checks,
    FileWrite,
    MergeResult,
    PullCreate,
    PullDiff,
    PullOut,
    Review,
    ReviewCreate,
)

log = logging.getLogger("hearth.pulls")
STALE_RUNNING_SECONDS = 120


def _signature(username: str) -> pygit2.Signature:
    return pygit2.Signature(username, f"{username}@users.hearth.invalid")


class PullRequests:
    def __init__(self, *, pool: asyncpg.Pool, store: RepoStore, reader: SnapshotReader,
                 queue: ReconcileQueue) -> None:
        self.pool = pool
        self.store = store
        self.reader = reader
        self.queue = queue
        self._tasks: set[asyncio.Task[None]] = set()
        self._merging: dict[str, asyncio.Lock] = {}
        """One merge at a time per tenant in this process; across processes the
        compare-and-swap on main decides (and a loser merges again onto the new main)."""

    # ---------------------------------------------------------------- policy, views

    def _policy(self, tenant: str) -> PullRequestPolicy:
        """The merge rules as ``main`` has them (a branch cannot loosen its own rules)."""
        head = self.store.head(tenant)
        if head is None:
            return PullRequestPolicy()
        try:
            snapshot = self.reader.load(self.store.open(tenant), head, tenant=tenant)
        except ConfigError:
            return PullRequestPolicy()
        return snapshot.config.tenant.spec.policies.pull_requests

    async def _verdict(self, conn: asyncpg.Connection, tenant: str, row: dict[str, Any], *,
                       live: bool) -> tuple[merge.Verdict, list[dict[str, Any]]]:
        """Mergeability of ``row``; ``live`` also test-merges it into main for conflicts."""
        reviews = (await pull_db.reviews(conn, [row["id"]]))[row["id"]]
        policy = await anyio.to_thread.run_sync(self._policy, tenant)
        conflicts: list[str] = []
        if live and row["status"] == "open":
            main = await anyio.to_thread.run_sync(self.store.head, tenant)
            if main is not None:
                conflicts = await anyio.to_thread.run_sync(
                    merge.conflicts_with, self.store.open(tenant), main, row["head_revision"])
        found = merge.verdict(state=row["status"], head=row["head_revision"],
                              checks=row["checks"] or {}, reviews=reviews,
                              author_id=row["author_id"], author_kind=row["author_kind"],
                              policy=policy, conflicts=conflicts)
        return found, reviews

    async def _out(self, conn: asyncpg.Connection, tenant: str, row: dict[str, Any], *,
                   live: bool) -> PullOut:
        found, reviews = await self._verdict(conn, tenant, row, live=live)
        return PullOut(
            number=row["number"], title=row["title"], body=row["description"],
            author=row["author"], author_kind=row["author_kind"], source=row["branch"],
            target=row["target"], base=row["base_revision"], head=row["head_revision"],
            state=row["status"], mergeable=found.mergeable, approvals=found.approvals,
            required_approvals=found.required,
            checks=Checks.model_validate(row["checks"] or {}),
            reviews=[Review.model_validate(r) for r in reviews], labels=list(row["labels"]),
            merge_commit=row["merged_revision"], reverts=row["reverts"],
            support_request=row["support_request_id"], created_at=row["created_at"],
            updated_at=row["updated_at"], merged_at=row["merged_at"], closed_at=row["closed_at"])

    async def get(self, tenant_row: dict[str, Any], number: int) -> PullOut:
        async with self.pool.acquire() as conn:
            row = await pull_db.get_pull(conn, tenant_id=tenant_row["id"], number=number)
            self._reschedule_if_stale(tenant_row, row)
            return await self._out(conn, tenant_row["name"], row, live=True)

    async def list(self, tenant_row: dict[str, Any], *, state: str | None) -> list[PullOut]:
        async with self.pool.acquire() as conn:
            rows = await pull_db.list_pulls(conn, tenant_id=tenant_row["id"], state=state)
            return [await self._out(conn, tenant_row["name"], r, live=False) for r in rows]

    async def diff(self, tenant_row: dict[str, Any], number: int) -> PullDiff:
        async with self.pool.acquire() as conn:
            row = await pull_db.get_pull(conn, tenant_id=tenant_row["id"], number=number)
        base = row["base_revision"] if row["status"] != "open" else (
            await anyio.to_thread.run_sync(self.store.head, tenant_row["name"])
            or row["base_revision"])
        files, patch = await anyio.to_thread.run_sync(
            branches.diff, self.store.open(tenant_row["name"]), base, row["head_revision"])
        return PullDiff(number=number, base=base, head=row["head_revision"], files=files,
                        patch=patch)

    # ---------------------------------------------------------------- open, review, close

    async def open(self, tenant_row: dict[str, Any], data: PullCreate, *, author_kind: str,
                   author_id: str, support_request: int | None = None,
                   reverts: int | None = None) -> PullOut:
        tenant = tenant_row["name"]
        repo = self.store.open(tenant)
        if data.source == branches.MAIN_BRANCH:
            raise InvalidInputError("a pull request needs a branch other than main")
        head = await anyio.to_thread.run_sync(branches.head_of, repo, data.source)
        if head is None:
            raise NotFoundError(f"branch {data.source!r} does not exist")
        main = self.store.head(tenant)
        if main is None:
            raise ConflictError("the repository has no main branch")
        if head == main or repo.descendant_of(main, head):
            raise ConflictError(f"branch {data.source!r} has nothing that main does not have")
        async with self.pool.acquire() as conn:
            if await pull_db.open_on_branch(conn, tenant_id=tenant_row["id"], branch=data.source):
                raise ConflictError(f"branch {data.source!r} already has an open pull request")
            row = await pull_db.insert_pull(
                conn, tenant_id=tenant_row["id"], title=data.title, body=data.body,
                branch=data.source, target=data.target, base=main, head=head,
                author_kind=author_kind, author_id=author_id, labels=list(data.labels),
                support_request_id=support_request, reverts=reverts)
            await audit.record(conn, actor_kind="person" if author_kind != "assistant"
                               else "system", actor_id=author_id, tenant_id=tenant_row["id"],
                               action="pull.open", outcome="success",
                               target=f"pull:{row['number']}",
                               details={"branch": data.source, "head": head})
            self.schedule_checks(tenant_row, row)
            return await self._out(conn, tenant, row, live=False)

    async def review(self, tenant_row: dict[str, Any], number: int, data: ReviewCreate, *,
                     person_id: int, username: str, role: str) -> PullOut:
        async with self.pool.acquire() as conn:
            row = await pull_db.get_pull(conn, tenant_id=tenant_row["id"], number=number)
            if row["status"] != "open":
                raise ConflictError(f"pull request #{number} is {row['status']}")
            policy = await anyio.to_thread.run_sync(self._policy, tenant_row["name"])
            if (data.event == "approve" and row["author_id"] == str(person_id)
                    and not policy.allow_self_approval):
                raise ConflictError("authors may not approve their own pull request "
                                    "(tenant policy pull_requests.allow_self_approval)")
            await pull_db.add_review(conn, pull_id=row["id"], person_id=person_id,
                                     username=username, role=role, state=data.event,
                                     body=data.body, head=row["head_revision"])
            await audit.record(conn, actor_kind="person", actor_id=str(person_id),
                               tenant_id=tenant_row["id"], action=f"pull.review.{data.event}",
                               outcome="success", target=f"pull:{number}",
                               details={"head": row["head_revision"]})
            return await self._out(conn, tenant_row["name"], row, live=False)

    async def close(self, tenant_row: dict[str, Any], number: int, *, person_id: int) -> PullOut:
        async with self.pool.acquire() as conn:
            row = await pull_db.get_pull(conn, tenant_id=tenant_row["id"], number=number)
            await pull_db.mark_closed(conn, row["id"])
            await audit.record(conn, actor_kind="person", actor_id=str(person_id),
                               tenant_id=tenant_row["id"], action="pull.close",
                               outcome="success", target=f"pull:{number}")
            row = await pull_db.get_by_id(conn, row["id"])
            return await self._out(conn, tenant_row["name"], row, live=False)

    # ---------------------------------------------------------------- merge, revert

    async def merge(self, tenant_row: dict[str, Any], number: int, *, person_id: int,
                    username: str) -> MergeResult:
        tenant = tenant_row["name"]
        async with self.pool.acquire() as conn:
            row = await pull_db.get_pull(conn, tenant_id=tenant_row["id"], number=number)
            if not await pull_db.try_merge_lock(conn, row["id"]):
                raise ConflictError(f"pull request #{number} is being merged by someone else")
            try:
                row = await pull_db.get_by_id(conn, row["id"])
                found, _ = await self._verdict(conn, tenant, row, live=True)
                if found.mergeable != "clean":
                    raise ConflictError(f"pull request #{number} cannot merge: "
                                        f"{found.mergeable} ({found.reason})")
                message = merge.merge_message(
                    number=number, branch=row["branch"], title=row["title"],
                    body=row["description"], requested_by=row["author"],
                    approvers=found.approvers, merged_by=username,
                    support_request=row["support_request_id"])
                async with self._merging.setdefault(tenant, asyncio.Lock()):
                    old, commit = await anyio.to_thread.run_sync(
                        lambda: merge.merge_into_main(
                            self.store, self.reader, tenant=tenant, head=row["head_revision"],
                            message=message, author=_signature(username)))
                await pull_db.mark_merged(conn, row["id"], merge_commit=commit,
                                          merged_by=person_id)
                await audit.record(conn, actor_kind="person", actor_id=str(person_id),
                                   tenant_id=tenant_row["id"], action="pull.merge",
                                   outcome="success", target=f"pull:{number}",
                                   details={"merge_commit": commit, "previous_main": old})
            finally:
                await pull_db.merge_unlock(conn, row["id"])
        queued = await enqueue_changed(self.queue, self.reader, self.store, tenant=tenant,
                                       old=old, new=commit)
        return MergeResult(number=number, state="merged", merge_commit=commit, queued=queued)

    async def revert(self, tenant_row: dict[str, Any], number: int, *, person_id: int,
                     username: str, role: str) -> PullOut:
        async with self.pool.acquire() as conn:
            row = await pull_db.get_pull(conn, tenant_id=tenant_row["id"], number=number)
        if row["status"] != "merged" or not row["merged_revision"]:
            raise ConflictError(f"pull request #{number} is not merged; nothing to revert")
        branch, _, _ = await anyio.to_thread.run_sync(
            lambda: revert.create_revert_branch(
                self.store, tenant=tenant_row["name"], merge_commit=row["merged_revision"],
                number=number, title=row["title"], author=_signature(username)))
        data = PullCreate(title=f'Revert "{row["title"]}"'[:200], source=branch,
                          body=f"Reverts #{number} (merge commit {row['merged_revision']}).",
                          labels=["revert"])
        return await self.open(tenant_row, data, author_kind=role, author_id=str(person_id),
                               reverts=number)

    # ---------------------------------------------------------------- files on branches

    async def write_file(self, tenant_row: dict[str, Any], *, branch: str, path: str,
                         data: FileWrite, person_id: int, username: str) -> str:
        if branch == branches.MAIN_BRANCH:
            raise ConflictError("main is protected: write to a branch and open a pull request")
        if (data.content is None) == (data.edits is None):
            raise InvalidInputError("give either content or edits")
        tenant = tenant_row["name"]

        def commit() -> str:
            repo = self.store.open(tenant)
            current = branches.head_of(repo, branch)
            if current != data.expected_head:
                raise ConflictError(
                    f"branch {branch!r} is at {(current or 'nothing')[:12]}, not "
                    f"{(data.expected_head or 'nothing')[:12]}: re-read and try again")
            parent = current or self.store.head(tenant)
            if data.content is not None:
                content = data.content.encode()
                check_document(content, file=path)
            else:
                try:
                    blob = repo[parent].tree[path] if parent else None
                except KeyError:
                    blob = None
                if blob is None:
                    raise NotFoundError(f"{path} does not exist on {branch}; send content")
                edits = [Edit(e.op, tuple(e.path), e.value) for e in data.edits or []]
                content = edit_yaml(blob.data, edits, file=path)
            return self.store.commit_files(
                tenant, {path: content}, message=data.message, author=_signature(username),
                expected_head=parent, branch=branches.ref_of(branch)) if current else \
                self._create_branch_commit(tenant, branch, parent, path, content, data.message,
                                           username)

        new = await anyio.to_thread.run_sync(commit)
        await self.on_push(tenant_row, {branches.ref_of(branch): (data.expected_head, new)})
        async with self.pool.acquire() as conn:
            await audit.record(conn, actor_kind="person", actor_id=str(person_id),
                               tenant_id=tenant_row["id"], action="branch.write",
                               outcome="success", target=f"branch:{branch}",
                               details={"path": path, "commit": new})
        return new

    def _create_branch_commit(self, tenant: str, branch: str, parent: str | None, path: str,
                              content: bytes, message: str, username: str) -> str:
        # commit_files moves the branch from ``expected_head``; a new branch starts at main's
        # tip, so the commit is built on it and the branch created with expected=None.
        repo = self.store.open(tenant)
        index = pygit2.Index()
        if parent:
            index.read_tree(repo[parent].tree)
        index.add(pygit2.IndexEntry(path, repo.create_blob(content), pygit2.enums.FileMode.BLOB))
        tree = index.write_tree(repo)
        author = _signature(username)
        commit = str(repo.create_commit(None, author, author, message, tree,
                                        [pygit2.Oid(hex=parent)] if parent else []))
        self.store.move_branch(tenant, branch=branches.ref_of(branch), new=commit, expected=None)
        return commit

    # ---------------------------------------------------------------- pushes and checks

    async def on_push(self, tenant_row: dict[str, Any],
                      moved: dict[str, tuple[str | None, str | None]]) -> None:
        """Branches moved (a git push or a file write): re-check their open pull requests;
        a moved main is queued for reconcile like a merge."""
        for ref, (old, new) in sorted(moved.items()):
            if new is None:
                continue
            if ref == MAIN:
                await enqueue_changed(self.queue, self.reader, self.store,
                                      tenant=tenant_row["name"], old=old, new=new)
                continue
            branch = ref.removeprefix("refs/heads/")
            async with self.pool.acquire() as conn:
                for row in await pull_db.open_on_branch(conn, tenant_id=tenant_row["id"],
                                                        branch=branch):
                    await pull_db.set_head(conn, row["id"], new)
                    self.schedule_checks(tenant_row, await pull_db.get_by_id(conn, row["id"]))

    def _reschedule_if_stale(self, tenant_row: dict[str, Any], row: dict[str, Any]) -> None:
        if row["status"] != "open":
            return
        found = row["checks"] or {}
        started = found.get("started_at")
        stale_running = found.get("status") in ("pending", "running") and (
            started is None or time.time() - datetime.fromisoformat(started).timestamp()
            > STALE_RUNNING_SECONDS)
        if found.get("head") != row["head_revision"] or stale_running:
            self.schedule_checks(tenant_row, row)

    def schedule_checks(self, tenant_row: dict[str, Any], row: dict[str, Any]) -> None:
        task = asyncio.create_task(self.run_checks(tenant_row, row["id"], row["head_revision"]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_checks(self, tenant_row: dict[str, Any], pull_id: int, head: str) -> Checks:
        tenant = tenant_row["name"]
        now = datetime.now(UTC)
        running = Checks(head=head, status="running", started_at=now)
        try:
            async with self.pool.acquire() as conn:
                if not await pull_db.set_checks(conn, pull_id, head=head,
                                                checks=running.model_dump(mode="json")):
                    return running  # the head moved on; its own checks are scheduled
                fleet = await pull_db.observed_by_name(conn, tenant_id=tenant_row["id"])
            started = time.perf_counter()
            main = await anyio.to_thread.run_sync(self.store.head, tenant)
            result = await anyio.to_thread.run_sync(
                lambda: checks.compute_checks(self.store.open(tenant), self.reader,
                                              tenant=tenant, head=head, main=main, fleet=fleet,
                                              now=now))
            result = result.model_copy(update={
                "started_at": now, "finished_at": datetime.now(UTC),
                "duration_ms": round((time.perf_counter() - started) * 1000, 1)})
            async with self.pool.acquire() as conn:
                await pull_db.set_checks(conn, pull_id, head=head,
                                         checks=result.model_dump(mode="json"))
            return result
        except Exception:
            log.exception("checks of pull request %s at %s failed", pull_id, head[:12])
            raise

    async def idle(self) -> None:
        """Wait for every scheduled check (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
