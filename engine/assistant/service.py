"""Support requests end to end: store, queue, ask the model, decide, open a pull request.

``submit`` stores the request first (nothing is lost if the model is slow or down),
counts it against the person's hourly limit in Redis and queues its id. The queue
is a Redis sorted set scored by due time; ``claim`` pops due ids atomically (one
Lua script), so two workers never take the same entry; a lost entry is found again
by ``resync`` from PostgreSQL (``support_requests.next_attempt_at``), so a Redis
restart loses nothing. ``process`` runs in the worker, never in an API request:

1. load the request and its tenant's configuration at the head of ``main`` (the
   tenant is the row's, set from authentication when it was stored);
2. ask the model (``engine.assistant.model``); when it does not answer, the
   request becomes ``waiting_for_model`` and is queued again with backoff;
3. ``engine.assistant.decide`` turns the reply into an answer, a question, a
   refusal or a change;
4. a change becomes round-trip edits on a new branch ``support/<id>-<slug>``,
   committed as the assistant with ``Requested-by:`` and ``Support-Request:``
   trailers; the branch is validated and scope-checked
   (``engine.assistant.scope``), and only then is a pull request opened through
   ``engine.pulls`` (author kind ``assistant``: it always needs an operator's
   approval, and the assistant never merges).

``view`` shows a request with its pull request's state through to ``applied``: merged,
and every appliance the change concerns runs a revision containing the merge commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
import asyncpg
import pygit2
import yaml
from redis.asyncio import Redis

from engine.assistant import decide as deciding
from engine.assistant.model import ModelClient, ModelUnavailable, Proposal
from engine.assistant.prompt import build_messages, tenant_facts
from engine.assistant.scope import out_of_scope
from engine.db import audit
from engine.db import support as support_db
from engine.errors import ConfigError, NotFoundError, RateLimitedError
from engine.pulls import branches
from engine.pulls.service import PullRequests
from engine.repos.edit import edit_yaml
from engine.repos.reader import SnapshotReader
from engine.repos.store import RepoStore
from schemas.config import APPLIANCES_DIR, TenantConfig
from schemas.intents import SupportOut, SupportPull
from schemas.pulls import PullCreate

log = logging.getLogger("hearth.assistant")
QUEUE_KEY = "hearth:support:due"
ASSISTANT = pygit2.Signature("Hearth Assistant", "assistant@hearth.invalid")

_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do redis.call('ZREM', KEYS[1], id) end
return ids
"""


@dataclass(frozen=True, slots=True)
class SupportLimits:
    per_person_per_hour: int = 30
    """Requests one person may submit per hour."""
    backoff_base: float = 5.0
    """Seconds before the first retry when the model is down; doubled per attempt."""
    backoff_max: float = 300.0


def slug(text: str) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())[:5]
    return "-".join(words)[:40].strip("-") or "request"


class SupportService:
    def __init__(self, *, pool: asyncpg.Pool, redis: Redis, store: RepoStore,
                 reader: SnapshotReader, pulls: PullRequests, model: ModelClient | None,
                 limits: SupportLimits | None = None) -> None:
        self.pool = pool
        self.redis = redis
        self.store = store
        self.reader = reader
        self.pulls = pulls
        self.model = model
        self.limits = limits or SupportLimits()
        self._claim = redis.register_script(_CLAIM)

    # ---------------------------------------------------------------- API side

    async def submit(self, *, tenant_row: dict[str, Any], person_id: int, role: str,
                     message: str, appliance: str | None, conversation_id: int | None
                     ) -> SupportOut:
        window = int(time.time() // 3600)
        key = f"hearth:support:rate:{person_id}:{window}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 3600)
            count, _ = await pipe.execute()
        if count > self.limits.per_person_per_hour:
            raise RateLimitedError("too many support requests this hour",
                                   retry_after=3600 - int(time.time()) % 3600)
        async with self.pool.acquire() as conn:
            if conversation_id is not None:
                first = await support_db.tenant_of(conn, conversation_id)
                if first is None or first["id"] != tenant_row["id"]:
                    raise NotFoundError(f"conversation {conversation_id} not found")
                root = await conn.fetchval(
                    "SELECT COALESCE(conversation_id, id) FROM support_requests WHERE id = $1",
                    conversation_id)
                conversation_id = root
            row = await support_db.insert_request(
                conn, tenant_id=tenant_row["id"], person_id=person_id, role=role,
                text=message, appliance=appliance, conversation_id=conversation_id)
            await audit.record(conn, actor_kind="person", actor_id=str(person_id),
                               tenant_id=tenant_row["id"], action="support.submit",
                               outcome="success", target=f"support:{row['id']}")
        await self.redis.zadd(QUEUE_KEY, {str(row["id"]): time.time()})
        return await self._out(row)

    async def get(self, request_id: int, *, person_id: int | None) -> SupportOut:
        async with self.pool.acquire() as conn:
            row = await support_db.get_request(conn, request_id)
        if person_id is not None and row["requested_by"] != person_id:
            raise NotFoundError(f"support request {request_id} not found")
        return await self._out(row)

    async def list(self, *, tenant_ids: list[int], person_id: int | None,
                   status: str | None, limit: int = 50) -> list[SupportOut]:
        async with self.pool.acquire() as conn:
            rows = await support_db.list_requests(conn, tenant_ids=tenant_ids,
                                                  person_id=person_id, status=status,
                                                  limit=limit)
        return [await self._out(r) for r in rows]

    async def _out(self, row: dict[str, Any]) -> SupportOut:
        stored = row["intents"] or {}
        pull = None
        if row["pull_number"] is not None:
            pull = await self._pull_state(row, stored.get("files", []))
        return SupportOut(
            id=row["id"], tenant=row["tenant"], requested_by=row["requester"],
            conversation_id=row["conversation_id"], appliance=row["appliance"],
            message=row["text"], status=row["status"], reply_kind=row["reply_kind"],
            reply=row["answer"], intents=stored.get("intents", []), attempts=row["attempts"],
            error=row["error"], pull_request=pull, created_at=row["created_at"],
            updated_at=row["updated_at"])

    async def _pull_state(self, row: dict[str, Any], files: list[str]) -> SupportPull:
        async with self.pool.acquire() as conn:
            pull = await support_db.pull_of(conn, tenant_id=row["tenant_id"],
                                            number=row["pull_number"])
            if pull is None:
                return SupportPull(number=row["pull_number"], state="deleted")
            state = pull["status"]
            merged = pull["merged_revision"]
            if state == "merged" and merged:
                names = await anyio.to_thread.run_sync(self._concerned, row["tenant"], merged,
                                                       files)
                applied = await support_db.applied_revisions(
                    conn, tenant_id=row["tenant_id"], appliances=names)
                if applied and await anyio.to_thread.run_sync(
                        self._contains_all, row["tenant"], merged, list(applied.values())):
                    state = "applied"
        return SupportPull(number=pull["number"], state=state, merge_commit=merged)

    def _concerned(self, tenant: str, commit: str, files: list[str]) -> list[str]:
        """Appliances a change of ``files`` concerns: named files, or every appliance for
        shared files (users, groups)."""
        named = [f[len(APPLIANCES_DIR) + 1:-5] for f in files
                 if f.startswith(APPLIANCES_DIR + "/")]
        if len(named) == len(files):
            return named
        try:
            return self.reader.load(self.store.open(tenant), commit, tenant=tenant
                                    ).appliance_names()
        except ConfigError:
            return named

    def _contains_all(self, tenant: str, merged: str, applied: list[str | None]) -> bool:
        repo = self.store.open(tenant)
        for revision in applied:
            if revision is None:
                return False
            if revision != merged and not repo.descendant_of(revision, merged):
                return False
        return True

    # ---------------------------------------------------------------- worker side

    async def claim(self, *, limit: int = 10) -> list[int]:
        ids = await self._claim(keys=[QUEUE_KEY], args=[time.time(), limit])
        return [int(i) for i in ids]

    async def resync(self) -> int:
        """Queue every pending request that is due (a lost queue entry is found here)."""
        async with self.pool.acquire() as conn:
            ids = await support_db.due(conn, now=datetime.now(UTC))
        if ids:
            await self.redis.zadd(QUEUE_KEY, {str(i): time.time() for i in ids})
        return len(ids)

    async def run_once(self) -> int:
        """Claim what is due and process it; the number processed."""
        ids = await self.claim()
        for request_id in ids:
            try:
                await self.process(request_id)
            except Exception:
                log.exception("support request %s failed", request_id)
        return len(ids)

    async def run(self, stop: asyncio.Event, *, poll: float = 0.5,
                  resync_every: float = 30.0) -> None:
        last_resync = 0.0
        while not stop.is_set():
            if time.monotonic() - last_resync > resync_every:
                await self.resync()
                last_resync = time.monotonic()
            if not await self.run_once():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll)

    async def process(self, request_id: int) -> None:
        async with self.pool.acquire() as conn:
            row = await support_db.get_request(conn, request_id)
            if row["status"] not in support_db.PENDING:
                return
            history = []
            if row["conversation_id"] is not None:
                for turn in await support_db.conversation(conn, root=row["conversation_id"],
                                                          before=row["id"]):
                    history.append((turn["text"], turn["answer"] or ""))
        tenant = row["tenant"]
        head = await anyio.to_thread.run_sync(self.store.head, tenant)
        config = None
        if head is not None:
            with contextlib.suppress(ConfigError):
                config = (await anyio.to_thread.run_sync(
                    lambda: self.reader.load(self.store.open(tenant), head, tenant=tenant))
                    ).config
        if config is None or head is None:
            await self._finish(row, "failed", None, "The configuration of your company cannot "
                               "be read right now; an operator has been told.", proposal=None,
                               error="main does not validate")
            return
        if self.model is None:
            raise ModelUnavailable("no model configured")
        messages = build_messages(message=row["text"], facts=tenant_facts(config),
                                  appliance=row["appliance"], history=history)
        try:
            proposal = await self.model.propose(messages)
        except ModelUnavailable as exc:
            await self._retry_later(row, str(exc))
            return
        decision = deciding.decide(proposal.reply, config=config, role=row["role"],
                                   appliance=row["appliance"], problem=proposal.problem)
        if isinstance(decision, deciding.Change):
            decision = await self._open_pull(row, config, head, decision, proposal)
            if isinstance(decision, deciding.Change):
                return
        status, kind = {deciding.Answer: ("answered", "answer"),
                        deciding.Question: ("question", "question"),
                        deciding.Refusal: ("refused", "refusal")}[type(decision)]
        await self._finish(row, status, kind, decision.text, proposal=proposal,
                           error=proposal.problem)

    async def _retry_later(self, row: dict[str, Any], error: str) -> None:
        delay = min(self.limits.backoff_base * 2 ** row["attempts"], self.limits.backoff_max)
        due = datetime.now(UTC) + timedelta(seconds=delay)
        async with self.pool.acquire() as conn:
            await support_db.mark_waiting(conn, row["id"], error=error, next_attempt_at=due)
        await self.redis.zadd(QUEUE_KEY, {str(row["id"]): due.timestamp()})
        log.warning("support request %s: model unavailable, retry in %.0fs: %s", row["id"],
                    delay, error)

    async def _finish(self, row: dict[str, Any], status: str, kind: str | None, text: str,
                      *, proposal: Proposal | None, error: str | None,
                      stored: dict[str, Any] | None = None, pull: int | None = None) -> None:
        async with self.pool.acquire() as conn:
            done = await support_db.finish(
                conn, row["id"], status=status, reply_kind=kind, answer=text,
                intents=stored or {}, model=self.model.model if self.model else None,
                raw_reply=proposal.raw if proposal else None, error=error, pull_number=pull)
            if done:
                await audit.record(conn, actor_kind="system", actor_id="assistant",
                                   tenant_id=row["tenant_id"], action=f"support.{status}",
                                   outcome="success", target=f"support:{row['id']}",
                                   details={"pull": pull} if pull else {})

    async def _open_pull(self, row: dict[str, Any], config: TenantConfig, head: str,
                         change: deciding.Change, proposal: Proposal) -> deciding.Decision:
        """Branch, commit, validate, scope-check, open; a Question when the change does not
        hold together, the ``Change`` itself once the pull request is open."""
        tenant = row["tenant"]
        branch = f"support/{row['id']}-{slug(row['text'])}"

        def commit() -> str:
            repo = self.store.open(tenant)
            tree = repo[head].tree
            files: dict[str, bytes] = {}
            changed: dict[str, tuple[Any, Any]] = {}
            for path, edits in change.edits.items():
                old = tree[path].data
                files[path] = edit_yaml(old, edits, file=path)
                changed[path] = (yaml.safe_load(old), yaml.safe_load(files[path]))
            problems = out_of_scope(changed, change.scope)
            if problems:
                raise _OutOfScope(problems)
            index = pygit2.Index()
            index.read_tree(tree)
            for path, content in files.items():
                index.add(pygit2.IndexEntry(path, repo.create_blob(content),
                                            pygit2.enums.FileMode.BLOB))
            message = "\n".join([
                f"Support request #{row['id']}: {'; '.join(change.summary)}"[:200], "",
                f"Requested-by: {row['requester'] or 'unknown'}",
                f"Support-Request: #{row['id']}", ""])
            new = str(repo.create_commit(None, ASSISTANT, ASSISTANT, message,
                                         index.write_tree(repo), [pygit2.Oid(hex=head)]))
            self.reader.load(repo, new, tenant=tenant)  # ConfigError: does not validate
            self.store.move_branch(tenant, branch=branches.ref_of(branch), new=new,
                                   expected=None)
            return new

        try:
            await anyio.to_thread.run_sync(commit)
        except _OutOfScope as exc:
            log.error("support request %s: edits outside the intents: %s", row["id"],
                      exc.problems)
            return deciding.Refusal("I could not prepare that change safely; an operator "
                                    "has been told.")
        except ConfigError as exc:
            issues = "; ".join(i.message for i in exc.issues[:3])
            return deciding.Question(f"That change would not be valid ({issues}). "
                                     "Could you correct the details?")
        except NotFoundError as exc:  # pragma: no cover - decide checked the names
            return deciding.Question(str(exc))
        stored = {"intents": change.intents, "summary": change.summary,
                  "files": sorted(change.edits)}
        body = _pull_body(row, change)
        tenant_row = {"id": row["tenant_id"], "name": tenant}
        title = f"Support #{row['id']}: {'; '.join(change.summary)}"[:200]
        pull = await self.pulls.open(
            tenant_row, PullCreate(title=title, source=branch, body=body, labels=["support"]),
            author_kind="assistant", author_id=str(row["requested_by"]),
            support_request=row["id"])
        text = change.text or "I prepared the change; an operator will review it."
        await self._finish(row, "pull_request_opened", "change",
                           f"{text} (pull request #{pull.number})"[:1000], proposal=proposal,
                           error=None, stored=stored, pull=pull.number)
        return change


class _OutOfScope(Exception):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _pull_body(row: dict[str, Any], change: deciding.Change) -> str:
    quoted = "\n".join("> " + line for line in row["text"].splitlines() or [""])
    lines = [f"Support request #{row['id']} from {row['requester'] or 'unknown'}:", "",
             quoted, "", "Intents:"]
    lines += [f"- {item}" for item in change.summary]
    lines += ["", "The plan preview is in this pull request's checks. Prepared by the "
              "assistant; an operator must approve it."]
    return "\n".join(lines)[:20_000]
