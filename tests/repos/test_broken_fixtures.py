"""Every class of broken tenant repo is rejected, naming file:line:col, by the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pygit2
import pytest

from tests.repos.conftest import FIXTURES, commit_entry

# case -> (file, line, column, words the message must contain)
EXPECTED = {
    "yaml-syntax": ("appliances/broken.yaml", 7, 8, "YAML syntax error"),
    "duplicate-key": ("appliances/broken.yaml", 8, 3, "duplicate key 'hostname' (lines 6 and 8)"),
    "unknown-field": ("appliances/broken.yaml", 11, 9, "unknown field 'writeable'"),
    "wrong-type": ("appliances/broken.yaml", 11, 9, "read_only"),
    "invalid-ip": ("appliances/broken.yaml", 11, 34, "not a valid IPv4 address"),
    "bad-username": ("appliances/broken.yaml", 8, 19, "'John Smith' is not a valid POSIX name"),
    "share-outside-srv": ("appliances/broken.yaml", 10, 9, "must be under /srv"),
    "share-dotdot": ("appliances/broken.yaml", 10, 9, "must not contain '..'"),
    "dangling-group": ("appliances/broken.yaml", 8, 24, "group 'nurses' is not defined"),
    "alias-bomb": ("appliances/broken.yaml", 7, 8, "the value defined at line 6 is reused"),
    "python-tag": ("appliances/broken.yaml", 6, 13, "python/object/apply:os.system"),
    "plaintext-password": ("users.yaml", 37, 7, "plain-text passwords are not allowed"),
    "big-file": ("appliances/big.yaml", 1, 1, "the limit is"),
    "symlink": ("appliances/evil.yaml", 1, 1, "symbolic links are not allowed"),
    "submodule": ("vendor", 1, 1, "submodules are not allowed"),
    "outside-layout": ("scripts", 1, 1, "outside the tenant layout"),
}


def _build(case: str, make_tenant_repo) -> pygit2.Repository:
    overlay = FIXTURES / case / "overlay"
    repo = make_tenant_repo(overlay=overlay if overlay.exists() else None)
    if case == "big-file":
        blob = repo.create_blob(b"# padding\n" * (5 * 1024 * 1024 // 10))
        commit_entry(repo, "appliances/big.yaml", blob, pygit2.enums.FileMode.BLOB)
    elif case == "symlink":
        blob = repo.create_blob(b"/etc/passwd")
        commit_entry(repo, "appliances/evil.yaml", blob, pygit2.enums.FileMode.LINK)
    elif case == "submodule":
        commit_entry(repo, "vendor", pygit2.Oid(hex="1" * 40), pygit2.enums.FileMode.COMMIT)
    elif case == "outside-layout":
        blob = repo.create_blob(b"- hosts: all\n")
        commit_entry(repo, "scripts/run.yaml", blob, pygit2.enums.FileMode.BLOB)
    return repo


def _hearth(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_broken_repo_is_rejected_with_location(case: str, make_tenant_repo) -> None:
    repo = _build(case, make_tenant_repo)
    started = time.perf_counter()
    result = _hearth("validate", repo.path, "--rev", "refs/heads/main")
    elapsed = time.perf_counter() - started
    print(f"{case}: rejected in {elapsed * 1000:.0f} ms (CLI process included)")
    assert result.returncode == 1, result.stdout + result.stderr
    file, line, column, words = EXPECTED[case]
    lines = result.stdout.splitlines()
    matching = [x for x in lines if x.startswith(f"{file}:{line}:{column}: ")]
    assert matching, f"no issue at {file}:{line}:{column} in:\n{result.stdout}"
    assert any(words in x for x in matching), matching


def test_json_format_lists_issues(make_tenant_repo) -> None:
    repo = _build("dangling-group", make_tenant_repo)
    result = _hearth("validate", repo.path, "--rev", "refs/heads/main", "--format", "json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["valid"] is False
    assert {"file": "appliances/broken.yaml", "line": 8, "column": 24} == {
        k: report["issues"][0][k] for k in ("file", "line", "column")}


def test_example_repo_validates_as_worktree_and_as_commit(make_tenant_repo, example_repo_dir
                                                          ) -> None:
    assert _hearth("validate", str(example_repo_dir)).returncode == 0
    repo = make_tenant_repo()
    head = str(repo.references["refs/heads/main"].target)
    result = _hearth("validate", repo.path, "--rev", head, "--format", "json")
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout)["appliances"] == ["branch", "front-office", "lab"]


@pytest.mark.parametrize("rev", ["HEAD", "HEAD~1", "refs/heads/../x", "abc123",
                                 "refs/tags/v1", "@{-1}", "main~1", "../main"])
def test_raw_revisions_are_refused(rev: str, make_tenant_repo) -> None:
    repo = make_tenant_repo()
    result = _hearth("validate", repo.path, "--rev", rev)
    assert result.returncode == 1
    assert "not accepted" in result.stderr or "does not exist" in result.stderr


def test_all_issues_of_a_commit_are_reported_at_once(make_tenant_repo, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay" / "appliances"
    overlay.mkdir(parents=True)
    for name in ("one", "two"):
        (overlay / f"{name}.yaml").write_text(
            f"apiVersion: hearth/v1\nkind: Appliance\nmetadata:\n  name: {name}\n"
            f"spec:\n  hostname: {name}.example.com\n  color: blue\n")
    repo = make_tenant_repo(overlay=overlay.parent)
    result = _hearth("validate", repo.path, "--rev", "refs/heads/main")
    assert result.returncode == 1
    assert "appliances/one.yaml:7:3: unknown field 'color'" in result.stdout
    assert "appliances/two.yaml:7:3: unknown field 'color'" in result.stdout


def test_the_example_repos_schemas_are_the_current_export(tmp_path: Path,
                                                          example_repo_dir: Path) -> None:
    """The files editors validate against (``# yaml-language-server: $schema=``) must not
    lag behind the models: regenerate with ``hearth schema export example-config-repo/.schemas``."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "engine.cli", "schema", "export", str(tmp_path)],
                   check=True, capture_output=True)
    committed = example_repo_dir / ".schemas"
    exported = sorted(p.name for p in tmp_path.iterdir())
    assert exported == sorted(p.name for p in committed.iterdir())
    for name in exported:
        assert (tmp_path / name).read_text() == (committed / name).read_text(), name


def test_a_bare_repo_validates_main_by_default_and_takes_branch_names(make_tenant_repo) -> None:
    repo = make_tenant_repo()
    head = str(repo.references["refs/heads/main"].resolve().target)
    plain = _hearth("validate", repo.path, "--format", "json")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["commit"] == head
    named = _hearth("validate", repo.path, "--rev", "main", "--format", "json")
    assert named.returncode == 0 and json.loads(named.stdout)["commit"] == head
    # A broken branch is found by its name, and main stays valid.
    blob = repo.create_blob(b"kind: Appliance\nname: [\n")
    branch_commit = commit_entry(repo, "appliances/broken.yaml", blob,
                                 pygit2.enums.FileMode.BLOB)
    repo.references.create("refs/heads/feature/new-box", branch_commit)
    repo.references["refs/heads/main"].set_target(head)
    broken = _hearth("validate", repo.path, "--rev", "feature/new-box")
    assert broken.returncode == 1 and "appliances/broken.yaml:" in broken.stdout
    assert _hearth("validate", repo.path).returncode == 0
