"""The CLI over a real server: token create, pr show/approve/merge, history, audit --jsonl."""

from __future__ import annotations

import json

import pytest

from engine.cli import main
from tests.api.conftest import World
from tests.api.gitclient import authed, git, http_server


@pytest.fixture
def server(world: World):
    with http_server(world.settings) as base:
        yield base


def run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_token_pr_history_audit(server, world, capsys, tmp_path) -> None:
    operator = ["--api", server, "--token", world.jwts["operator"]]
    code, out = run(capsys, "token", "create", "--expires", "30d", "--scope", "read", *operator)
    token = out.strip()
    assert code == 0 and token.startswith("hth_pat_")
    git("clone", authed(server, token), str(tmp_path / "w"))

    code, out = run(capsys, "pr", "show", "acme", "1", *operator)
    assert code == 0
    assert out.splitlines()[0] == "#1 ready change [open, clean]"
    code, out = run(capsys, "pr", "merge", "acme", "1", *operator)
    assert code == 0 and out.startswith("#1 merged as ")
    code, out = run(capsys, "history", "acme", *operator)
    lines = out.splitlines()
    assert lines[0].endswith("operator: Merge pull request #1 from ready")
    assert lines[1:5] == ["    Pull-Request: #1", "    Requested-by: operator",
                          "    Approved-by: admin", "    Merged-by: operator"]
    code, out = run(capsys, "audit", "acme", "--jsonl", "--api", server,
                    "--token", world.jwts["auditor"])
    records = [json.loads(line) for line in out.splitlines()]
    assert records[0]["type"] == "change"
    assert records[0]["pull_request"]["number"] == 1
    code, out = run(capsys, "pr", "merge", "acme", "2", "--api", server,
                    "--token", world.jwts["auditor"])
    assert code == 1
