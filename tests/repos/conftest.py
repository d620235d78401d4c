from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pygit2
import pytest

from engine.repos.store import RepoStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "broken"
AUTHOR = pygit2.Signature("Test Operator", "operator@example.invalid")


def add_entry(repo: pygit2.Repository, tree: pygit2.Tree, path: str, oid: pygit2.Oid,
              mode: int) -> pygit2.Oid:
    """A copy of ``tree`` with ``path`` set to (oid, mode); builds nested trees as needed."""
    head, _, rest = path.partition("/")
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    if not rest:
        builder.insert(head, oid, mode)
        return builder.write()
    sub = tree[head] if tree is not None and head in tree else None
    sub_tree = repo[sub.id] if sub is not None else None
    builder.insert(head, add_entry(repo, sub_tree, rest, oid, mode), pygit2.enums.FileMode.TREE)
    return builder.write()


@pytest.fixture
def store(tmp_path: Path) -> RepoStore:
    return RepoStore(tmp_path / "repos")


@pytest.fixture
def make_tenant_repo(store: RepoStore, example_repo_dir: Path, tmp_path: Path
                     ) -> Callable[..., pygit2.Repository]:
    """Create a bare tenant repo from the example repo plus an overlay directory."""

    def make(name: str = "brightsmile", overlay: Path | None = None) -> pygit2.Repository:
        work = tmp_path / f"work-{name}"
        shutil.copytree(example_repo_dir, work, symlinks=True)
        if overlay is not None:
            shutil.copytree(overlay, work, dirs_exist_ok=True, symlinks=True)
        store.create(name, work, author=AUTHOR)
        return store.open(name)

    return make


def commit_entry(repo: pygit2.Repository, path: str, oid: pygit2.Oid, mode: int) -> str:
    """Commit one raw tree entry (any mode) on main; returns the new commit id."""
    head = repo.references["refs/heads/main"].resolve().target
    tree = add_entry(repo, repo[head].tree, path, oid, mode)
    return str(repo.create_commit("refs/heads/main", AUTHOR, AUTHOR, f"add {path}", tree, [head]))
