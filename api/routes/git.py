"""Git over smart HTTP at ``/git/{tenant}.git``: authenticate, authorize, hand over to git.

The stock client works unchanged: ``git clone http://HOST/git/acme.git``
asks for credentials on the first 401 and sends HTTP basic auth; the
password is a personal access token (``/api/v1/me/tokens``), the username is
ignored. Answers, in order:

- not a smart-protocol request of ``/git/<tenant>.git/…``: 404;
- no, malformed, unknown, expired or revoked token: 401 with
  ``WWW-Authenticate: Basic`` (before anything about the tenant is looked
  at, so an unknown tenant and a foreign one answer alike);
- a tenant that does not exist, has no repository, or where the caller has
  no role: 404, the same body either way;
- a role that ``PERMISSIONS["git.read"|"git.push"]`` does not list, or a
  ``read`` token pushing: 403;
- otherwise ``git http-backend`` answers (``engine.gitserver.backend``), with
  the decision for ``main`` passed to the pre-receive hook.

After a push, the branches that moved are audited and handed to the pull
request checks (``ctx.pulls.on_push``), and a moved ``main`` (an admin's
direct push) is queued for reconcile like a merge.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
import pygit2
from litestar import asgi
from litestar.types import Receive, Scope, Send

from api.auth import PERMISSIONS
from api.context import ApiContext
from engine.db import audit, tenants
from engine.db import tokens as token_db
from engine.errors import ConfigError, HearthError
from engine.gitserver.backend import BackendRequest, run_backend
from engine.gitserver.policy import main_push_mode, parse_path, service_of
from engine.repos.reader import SnapshotReader
from engine.repos.store import RepoStore

log = logging.getLogger("hearth.git")


async def _reply(send: Send, status: int, text: str, headers: list[tuple[bytes, bytes]] | None
                 = None) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def _basic_password(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, encoded = value.decode("latin-1").partition(" ")
            if scheme.lower() != "basic":
                return None
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            return decoded.partition(":")[2] or None
    return None


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def _branch_heads(store: RepoStore, tenant: str) -> dict[str, str]:
    repo = store.open(tenant)
    return {name: str(repo.references[name].resolve().target)
            for name in repo.references if name.startswith("refs/heads/")}


def _allows_direct_push(store: RepoStore, reader: SnapshotReader, tenant: str) -> bool:
    """The policy as ``main`` has it now (a push cannot grant itself the right)."""
    head = store.head(tenant)
    if head is None:
        return False
    try:
        snapshot = reader.load(store.open(tenant), head, tenant=tenant)
    except ConfigError:
        return False
    return snapshot.config.tenant.spec.policies.pull_requests.allow_direct_push


@asgi("/git", is_mount=True, copy_scope=True)
async def git_http(scope: Scope, receive: Receive, send: Send) -> None:
    ctx: ApiContext = scope["app"].state.ctx
    raw_path = scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0]
    parsed = parse_path(raw_path)
    query = scope.get("query_string", b"").decode("latin-1")
    service = None if parsed is None else service_of(scope["method"], parsed.rest, query)
    if parsed is None or service is None:
        await _reply(send, 404, "not found\n")
        return
    password = _basic_password(scope)
    async with ctx.pool.acquire() as conn:
        owner = None if password is None else await token_db.resolve(
            conn, token=password, secret_key=ctx.settings.secret_key)
        if owner is None:
            if password is not None:
                await audit.record(conn, actor_kind="anonymous", actor_id=None,
                                   action="git.auth", outcome="failure", target="git")
            await _reply(send, 401, "authentication required: use a personal access token as "
                         "the password (hearth token create)\n",
                         [(b"www-authenticate", b'Basic realm="hearth"')])
            return
        tenant = await tenants.get_tenant_by_name(conn, parsed.tenant)
        role: str | None = None
        if tenant is not None:
            role = "admin" if owner["is_admin"] else next(
                (r for tid, r in owner["roles"].values() if tid == tenant["id"]), None)
        person = str(owner["person_id"])
        store = RepoStore(ctx.settings.repos_dir)
        if role is None or not store.exists(parsed.tenant):
            await audit.record(conn, actor_kind="person", actor_id=person, action="git.denied",
                               outcome="denied", target="git", details={"reason": "not-member"})
            await _reply(send, 404, "not found\n")
            return
        assert tenant is not None
        rule = PERMISSIONS["git.push" if service == "receive" else "git.read"]
        if role not in rule.roles or (service == "receive" and owner["scope"] != "write"):
            why = "role" if role not in rule.roles else "token scope"
            await audit.record(conn, actor_kind="person", actor_id=person,
                               tenant_id=tenant["id"], action=f"git.{service}",
                               outcome="denied", target=f"git:{parsed.tenant}",
                               details={"reason": why})
            await _reply(send, 403, f"your {why} does not allow pushing to this repository\n")
            return

    extra = {"HEARTH_TENANT": parsed.tenant}
    pushing = service == "receive" and scope["method"] == "POST"
    before: dict[str, str] = {}
    if pushing:
        reader: SnapshotReader = ctx.source.reader
        allowed = await anyio.to_thread.run_sync(_allows_direct_push, store, reader,
                                                 parsed.tenant)
        extra["HEARTH_MAIN_PUSH"] = main_push_mode(role=role, allow_direct_push=allowed)
        before = await anyio.to_thread.run_sync(_branch_heads, store, parsed.tenant)

    async def body() -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if chunk := message.get("body", b""):
                yield chunk
            if not message.get("more_body", False):
                return

    request = BackendRequest(
        repos_dir=ctx.settings.repos_dir, path_info=f"/{parsed.tenant}.git{parsed.rest}",
        method=scope["method"], query=query, content_type=_header(scope, b"content-type"),
        content_encoding=_header(scope, b"content-encoding"),
        remote_user=owner["username"], extra_env=extra)
    response = await run_backend(request, body())
    await send({"type": "http.response.start", "status": response.status,
                "headers": [(k.encode(), v.encode()) for k, v in response.headers]})
    async for chunk in response.body:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    if pushing:
        # before the response ends, so a client that saw its push finish sees its pull
        # request at the new head (checks scheduled)
        await _after_push(ctx, store, tenant=tenant, person=person, before=before)
    await send({"type": "http.response.body", "body": b""})


async def _after_push(ctx: ApiContext, store: RepoStore, *, tenant: dict[str, Any], person: str,
                      before: dict[str, str]) -> None:
    after = await anyio.to_thread.run_sync(_branch_heads, store, tenant["name"])
    moved = {ref: (before.get(ref), after.get(ref)) for ref in set(before) | set(after)
             if before.get(ref) != after.get(ref)}
    if not moved:
        return
    await audit.record(ctx.pool, actor_kind="person", actor_id=person, tenant_id=tenant["id"],
                       action="git.push", outcome="success", target=f"git:{tenant['name']}",
                       details={"refs": {ref: {"old": old, "new": new}
                                         for ref, (old, new) in sorted(moved.items())}})
    if ctx.pulls is not None:
        try:
            await ctx.pulls.on_push(tenant, moved)
        except (HearthError, OSError, pygit2.GitError):
            log.exception("after-push work failed for %s", tenant["name"])


ROUTES = [git_http]
