"""Git over HTTP with the stock client: clone, fetch, push a branch; main is protected.

A real uvicorn server runs the app; ``git`` is the system's own client. Tokens
are personal access tokens made in the database like ``POST /me/tokens`` does.
"""

from __future__ import annotations

import base64
import gzip
import os
import resource
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from engine.repos.store import RepoStore, signature
from tests.api.conftest import World
from tests.api.gitclient import authed, git, http_server, make_token


@pytest.fixture
def server(world: World):
    with http_server(world.settings) as base:
        yield base


def _basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"x:{token}".encode()).decode()}


async def test_clone_edit_push_branch_and_main_is_protected(server, world, tmp_path) -> None:
    token = await make_token(world.settings, world.person_ids["operator"])
    work = tmp_path / "acme"
    git("clone", authed(server, token), str(work))
    assert (work / "tenant.yaml").exists()
    assert git("rev-parse", "HEAD", cwd=work).stdout.strip() == world.heads["acme"]

    (work / "README.md").write_text("notes\n")
    git("add", "README.md", cwd=work)
    git("commit", "-m", "notes", cwd=work)
    pushed = git("push", "origin", "HEAD:refs/heads/notes", cwd=work)
    store = RepoStore(world.settings.repos_dir)
    assert store.head("acme", "refs/heads/notes") == git("rev-parse", "HEAD", cwd=work
                                                         ).stdout.strip()
    assert "notes" in pushed.stderr

    refused = git("push", "origin", "HEAD:refs/heads/main", cwd=work, check=False)
    assert refused.returncode == 1
    assert "remote: main is protected: open a pull request" in refused.stderr
    assert store.head("acme") == world.heads["acme"]

    git("fetch", "origin", cwd=work)
    assert git("rev-parse", "origin/notes", cwd=work).stdout.strip() == store.head(
        "acme", "refs/heads/notes")


async def test_credentials_401_with_basic_challenge(server, world) -> None:
    good = await make_token(world.settings, world.person_ids["operator"])
    expired = await make_token(world.settings, world.person_ids["operator"],
                               expires_at=datetime.now(UTC) - timedelta(minutes=1))
    revoked = await make_token(world.settings, world.person_ids["operator"])
    conn = await asyncpg.connect(world.settings.database_url)
    await conn.execute("UPDATE personal_tokens SET revoked_at = now() WHERE hint = $1",
                       revoked[-4:])
    await conn.close()
    url = f"{server}/git/acme.git/info/refs?service=git-upload-pack"
    async with httpx.AsyncClient() as client:
        for headers in ({}, _basic("hth_pat_" + "x" * 43), _basic(expired), _basic(revoked),
                        {"Authorization": f"Bearer {world.jwts['operator']}"}):
            answer = await client.get(url, headers=headers)
            assert answer.status_code == 401, headers
            assert answer.headers["www-authenticate"] == 'Basic realm="hearth"'
        ok = await client.get(url, headers=_basic(good))
        assert ok.status_code == 200
        assert ok.headers["content-type"] == "application/x-git-upload-pack-advertisement"


async def test_unknown_and_foreign_tenant_answer_alike(server, world) -> None:
    token = await make_token(world.settings, world.person_ids["other-operator"])
    async with httpx.AsyncClient() as client:
        answers = [await client.get(f"{server}/git/{t}.git/info/refs?service=git-upload-pack",
                                    headers=_basic(token)) for t in ("acme", "nosuch", "globex")]
    assert [a.status_code for a in answers] == [404, 404, 200]
    assert answers[0].text == answers[1].text == "not found\n"


@pytest.mark.parametrize(("who", "scope", "clone", "push"), [
    ("admin", "write", 0, 0),
    ("operator", "write", 0, 0),
    ("operator", "read", 0, 403),
    ("customer", "write", 0, 403),
    ("auditor", "write", 0, 403),
    ("other-operator", "write", 404, 404),
])
async def test_roles(server, world, tmp_path, who, scope, clone, push) -> None:
    token = await make_token(world.settings, world.person_ids[who], scope=scope)
    work = tmp_path / "w"
    cloned = git("clone", authed(server, token), str(work), check=False)
    assert (cloned.returncode == 0) == (clone == 0), cloned.stderr
    if clone:
        assert "fatal: repository 'http://127.0.0.1" in cloned.stderr
        assert "/git/acme.git/' not found" in cloned.stderr
        return
    git("commit", "--allow-empty", "-m", "x", cwd=work)
    pushed = git("push", "origin", "HEAD:refs/heads/topic", cwd=work, check=False)
    assert (pushed.returncode == 0) == (push == 0), pushed.stderr
    if push:
        assert f"error: {push}" in pushed.stderr


async def test_admin_direct_push_when_policy_allows_is_validated(server, world, tmp_path
                                                                 ) -> None:
    store = RepoStore(world.settings.repos_dir)
    repo = store.open("acme")
    tenant_yaml = repo[world.heads["acme"]].tree["tenant.yaml"].data.decode()
    allowed = tenant_yaml.replace("    prune: false", "    prune: false\n    pull_requests:\n"
                                  "      allow_direct_push: true")
    assert allowed != tenant_yaml
    head = store.commit_files("acme", {"tenant.yaml": allowed.encode()}, message="allow",
                              author=signature("T", "t@example.org"),
                              expected_head=world.heads["acme"])
    admin = await make_token(world.settings, world.person_ids["admin"])
    operator = await make_token(world.settings, world.person_ids["operator"])
    work = tmp_path / "w"
    git("clone", authed(server, admin), str(work))
    users = work / "users.yaml"
    users.write_text(users.read_text() + "  - name: Bad Name\n")
    git("commit", "-am", "bad", cwd=work)
    refused = git("push", "origin", "HEAD:main", cwd=work, check=False)
    assert refused.returncode == 1
    assert "does not validate" in refused.stderr
    assert "remote: users.yaml:" in refused.stderr
    assert store.head("acme") == head

    git("reset", "--hard", "HEAD~1", cwd=work)
    (work / "README.md").write_text("admin note\n")
    git("add", "README.md", cwd=work)
    git("commit", "-m", "note", cwd=work)
    git("remote", "set-url", "origin", authed(server, operator), cwd=work)
    by_operator = git("push", "origin", "HEAD:main", cwd=work, check=False)
    assert "main is protected: open a pull request" in by_operator.stderr
    git("remote", "set-url", "origin", authed(server, admin), cwd=work)
    git("push", "origin", "HEAD:main", cwd=work)
    assert store.head("acme") == git("rev-parse", "HEAD", cwd=work).stdout.strip()


async def test_gzip_request_body(server, world) -> None:
    token = await make_token(world.settings, world.person_ids["auditor"])
    want = f"0032want {world.heads['acme']}\n00000009done\n".encode()
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{server}/git/acme.git/git-upload-pack", content=gzip.compress(want),
            headers={**_basic(token), "Content-Type": "application/x-git-upload-pack-request",
                     "Content-Encoding": "gzip"})
    assert answer.status_code == 200
    assert answer.content.startswith(b"0008NAK\n")
    assert b"PACK" in answer.content[:20]


async def test_a_50_mb_push_is_streamed(server, world, tmp_path: Path) -> None:
    token = await make_token(world.settings, world.person_ids["operator"])
    work = tmp_path / "w"
    git("clone", authed(server, token), str(work))
    (work / "blob.bin").write_bytes(os.urandom(50 * 1024 * 1024))
    git("add", "blob.bin", cwd=work)
    git("commit", "-m", "big", cwd=work)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    git("push", "origin", "HEAD:refs/heads/big", cwd=work)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    # the server runs in this process: had it buffered the pack, its peak would grow 50 MB
    assert grown_kib < 20 * 1024
    assert RepoStore(world.settings.repos_dir).head("acme", "refs/heads/big") is not None
