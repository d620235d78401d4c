"""Pull requests end to end with the stock git client: push, open, checks, review, merge, revert.

A real uvicorn server runs the app (checks run as its tasks), ``git`` pushes
branches, the API is called over HTTP with people's JWTs.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
import httpx
import pygit2
import pytest

from engine.repos.store import RepoStore
from tests.api.conftest import World
from tests.api.gitclient import authed, git, http_server, make_token
from tests.api.test_heartbeat import beat

PULLS = "/api/v1/tenants/acme/pulls"


@pytest.fixture
def server(world: World):
    with http_server(world.settings) as base:
        yield base


@pytest.fixture
async def api(server, world):
    async with httpx.AsyncClient(base_url=server, timeout=60) as client:
        yield client


def as_(world: World, who: str) -> dict[str, str]:
    return world.auth(who)


async def settled(api: httpx.AsyncClient, world: World, number: int) -> dict:
    for _ in range(300):
        pull = (await api.get(f"{PULLS}/{number}", headers=as_(world, "operator"))).json()
        if pull["checks"]["status"] in ("passed", "failed") and \
                pull["checks"]["head"] == pull["head"]:
            return pull
        await asyncio.sleep(0.05)
    raise AssertionError(f"checks of #{number} did not finish: {pull['checks']}")


def add_user(work: Path, name: str, uid: object) -> None:
    users = work / "users.yaml"
    users.write_text(users.read_text() + f"    - name: {name}\n      full_name: Maria Garcia\n"
                     f"      uid: {uid}\n      groups: [reception]\n")


async def test_push_open_fail_fix_approve_merge_revert(server, api, world, tmp_path) -> None:
    token = await make_token(world.settings, world.person_ids["operator"])
    work = tmp_path / "w"
    git("clone", authed(server, token), str(work))
    add_user(work, "maria", "lots")
    git("commit", "-am", "Add Maria to reception", cwd=work)
    git("push", "origin", "HEAD:refs/heads/add-maria", cwd=work)

    opened = await api.post(PULLS, headers=as_(world, "operator"), json={
        "title": "Add Maria", "body": "New receptionist.", "source": "add-maria"})
    assert opened.status_code == 201, opened.text
    n = opened.json()["number"]
    assert (n, opened.json()["state"], opened.json()["author"]) == (4, "open", "operator")
    failing = await settled(api, world, n)
    assert failing["checks"]["status"] == "failed"
    assert [(i["file"], i["line"], i["column"], i["message"])
            for i in failing["checks"]["validation"]["issues"]] == [
        ("users.yaml", 79, 7, "uid: Input should be a valid integer, unable to parse string "
                               "as an integer")]
    assert failing["mergeable"] == "checks_failing"

    users = work / "users.yaml"
    users.write_text(users.read_text().replace("uid: lots", "uid: 3007"))
    git("commit", "-am", "Fix uid", cwd=work)
    git("push", "origin", "HEAD:refs/heads/add-maria", cwd=work)
    passing = await settled(api, world, n)
    assert passing["checks"]["status"] == "passed", passing["checks"]
    preview = {a["appliance"]: a for a in passing["checks"]["plan_preview"]["appliances"]}
    assert sorted(preview) == ["branch", "front-office", "lab"]
    assert "adds user maria on front-office" in preview["front-office"]["changes"]
    assert preview["front-office"]["registered"] is True
    assert preview["branch"]["registered"] is False
    assert preview["front-office"]["window"] == (
        "at once after the merge (auto_sync, no maintenance window)")
    assert passing["mergeable"] == "needs_approval"

    self_approval = await api.post(f"{PULLS}/{n}/reviews", headers=as_(world, "operator"),
                                   json={"event": "approve"})
    assert self_approval.status_code == 409
    too_early = await api.post(f"{PULLS}/{n}/merge", headers=as_(world, "operator"))
    assert too_early.status_code == 409
    assert "needs_approval (0 of 1 required approvals)" in too_early.json()["detail"]
    approved = await api.post(f"{PULLS}/{n}/reviews", headers=as_(world, "admin"),
                              json={"event": "approve", "body": "ok"})
    assert approved.status_code == 201
    assert approved.json()["mergeable"] == "clean"

    diff = (await api.get(f"{PULLS}/{n}/diff", headers=as_(world, "auditor"))).json()
    assert [(f["path"], f["status"], f["additions"]) for f in diff["files"]] == [
        ("users.yaml", "modified", 4)]
    assert "+    - name: maria" in diff["patch"]

    merged = await api.post(f"{PULLS}/{n}/merge", headers=as_(world, "operator"))
    assert merged.status_code == 200, merged.text
    commit = merged.json()["merge_commit"]
    assert sorted(merged.json()["queued"]) == ["branch", "front-office", "lab"]
    store = RepoStore(world.settings.repos_dir)
    repo = store.open("acme")
    assert store.head("acme") == commit
    merge_commit = repo[commit]
    assert [str(p) for p in merge_commit.parent_ids] == [world.heads["acme"], passing["head"]]
    assert merge_commit.message == (
        "Merge pull request #4 from add-maria\n\nAdd Maria\n\nNew receptionist.\n\n"
        "Pull-Request: #4\nRequested-by: operator\nApproved-by: admin\nMerged-by: operator\n")
    again = await api.post(f"{PULLS}/{n}/merge", headers=as_(world, "admin"))
    assert again.status_code == 409

    # the chain: a run at the merge commit, then the heartbeat that confirms it
    conn = await asyncpg.connect(world.settings.database_url)
    run_id = await conn.fetchval(
        """INSERT INTO reconcile_runs (tenant_id, appliances, revision, status)
           VALUES ($1, $2, $3, 'succeeded') RETURNING id""", world.tenant_ids["acme"],
        [uuid.UUID(world.appliance_ids["acme/front-office"])], commit)
    await conn.close()
    beat_answer = await api.post("/api/v1/heartbeat", headers=as_(world, "appliance"),
                                 json=beat(1, applied_revision=commit))
    assert beat_answer.status_code in (200, 202), beat_answer.text
    history = (await api.get("/api/v1/tenants/acme/history", params={"path": "users.yaml"},
                             headers=as_(world, "auditor"))).json()
    assert [h["commit"] for h in history] == [commit, world.heads["acme"]]
    assert history[0]["trailers"] == {"Pull-Request": ["#4"], "Requested-by": ["operator"],
                                      "Approved-by": ["admin"], "Merged-by": ["operator"]}
    assert history[0]["paths"] == ["users.yaml"]
    by_lab = (await api.get("/api/v1/tenants/acme/history", params={"appliance": "lab"},
                            headers=as_(world, "auditor"))).json()
    assert [h["commit"] for h in by_lab] == [commit, world.heads["acme"]]
    trail = (await api.get("/api/v1/tenants/acme/audit", headers=as_(world, "auditor"))).json()
    change = trail["changes"][0]
    assert (change["pull_request"]["number"], change["pull_request"]["author"],
            change["approved_by"], change["merged_by"], change["merge_commit"]) == (
        4, "operator", ["admin"], "operator", commit)
    assert [(r["id"], r["appliances"]) for r in change["runs"]] == [(run_id, ["front-office"])]
    assert [c["appliance"] for c in change["confirmed"]] == ["front-office"]
    assert {"pull.open", "pull.merge", "git.push", "pull.review.approve"} <= {
        e["action"] for e in trail["events"]}
    export = await api.get("/api/v1/tenants/acme/audit", params={"format": "jsonl"},
                           headers=as_(world, "auditor"))
    assert export.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert lines[0]["type"] == "change" and lines[0]["merge_commit"] == commit
    assert {line["type"] for line in lines[1:]} == {"event"}

    reverted = await api.post(f"{PULLS}/{n}/revert", headers=as_(world, "operator"))
    assert reverted.status_code == 201, reverted.text
    assert (reverted.json()["number"], reverted.json()["source"], reverted.json()["reverts"]) == (
        5, "revert-4", 4)
    revert_diff = (await api.get(f"{PULLS}/{n + 1}/diff", headers=as_(world, "operator"))).json()
    assert [(f["path"], f["deletions"]) for f in revert_diff["files"]] == [("users.yaml", 4)]
    check = await settled(api, world, n + 1)
    assert "removes user maria on front-office" not in str(check)  # never applied: no heartbeat
    assert check["checks"]["status"] == "passed"


async def test_twenty_concurrent_merges_lose_nothing(server, api, world, tmp_path) -> None:
    token = await make_token(world.settings, world.person_ids["operator"])
    work = tmp_path / "w"
    git("clone", authed(server, token), str(work))
    for i in range(20):
        git("checkout", "-q", "-B", f"note-{i}", "origin/main", cwd=work)
        (work / ".schemas" / f"note-{i}.json").write_text(f'{{"note": {i}}}\n')
        git("add", ".", cwd=work)
        git("commit", "-qm", f"note {i}", cwd=work)
    # two more that touch the same line: the second to land must be refused as a conflict
    for who in ("x", "y"):
        git("checkout", "-q", "-B", f"clash-{who}", "origin/main", cwd=work)
        (work / "README.md").write_text(f"{who}\n")
        git("add", ".", cwd=work)
        git("commit", "-qm", f"clash {who}", cwd=work)
    git("push", "-q", "origin", *[f"note-{i}" for i in range(20)], "clash-x", "clash-y",
        cwd=work)
    sources = [f"note-{i}" for i in range(20)] + ["clash-x", "clash-y"]
    numbers = []
    for source in sources:
        opened = await api.post(PULLS, headers=as_(world, "operator"),
                                json={"title": source, "source": source})
        assert opened.status_code == 201, opened.text
        numbers.append(opened.json()["number"])
    for number in numbers:
        assert (await settled(api, world, number))["checks"]["status"] == "passed"
        await api.post(f"{PULLS}/{number}/reviews", headers=as_(world, "admin"),
                       json={"event": "approve"})
    answers = await asyncio.gather(*[api.post(f"{PULLS}/{n}/merge",
                                              headers=as_(world, "operator"))
                                     for n in numbers])
    codes = [a.status_code for a in answers]
    assert codes[:20] == [200] * 20, [a.text for a in answers]
    assert sorted(codes[20:]) == [200, 409]
    refusal = next(a for a in answers[20:] if a.status_code == 409).json()["detail"]
    assert "conflicts with main in: README.md" in refusal
    landed = {a.json()["merge_commit"] for a in answers if a.status_code == 200}
    repo = RepoStore(world.settings.repos_dir).open("acme")
    history = {str(c.id) for c in repo.walk(repo.references["refs/heads/main"].target,
                                            pygit2.enums.SortMode.TOPOLOGICAL)}
    assert landed <= history
    assert len(landed) == 21
    tree = repo.references["refs/heads/main"].peel(pygit2.Commit).tree
    assert sorted(e.name for e in tree[".schemas"] if e.name.startswith("note-")) == sorted(
        f"note-{i}.json" for i in range(20))
