"""Tenant repositories: one bare git repository per tenant under REPOS_DIR.

Git holds desired state and only git (docs/architecture.md, invariant 1). Every write
here builds a tree in memory from the branch tip and creates a commit whose
first parent is that tip; the branch then moves only if it still points at
the tip the caller saw (compare-and-swap, invariant 2), so two concurrent
merges never lose one another: the second one fails with ``ConflictError``
and retries on the new tip.

The compare-and-swap holds an exclusive ``flock`` on ``<repo>/hearth.lock``
while it compares and moves the ref, so writers in different processes (API
workers, the merge path, CLI) are serialised per tenant; it works on a shared
volume that supports POSIX locks (NFSv4, EFS, CephFS).
"""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pygit2

from engine.errors import ConflictError, InvalidInputError, NotFoundError
from schemas.names import OBJECT_NAME

MAIN = "refs/heads/main"


def check_tenant_name(name: str) -> str:
    if not OBJECT_NAME.fullmatch(name):
        raise InvalidInputError(
            f"tenant name {name!r} must be 1-63 lower-case letters, digits or hyphens, "
            "not starting or ending with a hyphen"
        )
    return name


def build_tree(repo: pygit2.Repository, directory: Path) -> pygit2.Oid:
    """Write ``directory``'s files into ``repo`` and return the tree id.

    Symlinks are committed as symlinks (mode 120000), so the reader rejects
    them exactly as it would in a pushed commit. ``.git`` is skipped.
    """
    builder = repo.TreeBuilder()
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if entry.name == ".git":
            continue
        if entry.is_symlink():
            blob = repo.create_blob(os.readlink(entry.path).encode())
            builder.insert(entry.name, blob, pygit2.enums.FileMode.LINK)
        elif entry.is_dir():
            sub = build_tree(repo, Path(entry.path))
            builder.insert(entry.name, sub, pygit2.enums.FileMode.TREE)
        elif entry.is_file():
            blob = repo.create_blob_fromdisk(entry.path)
            executable = entry.stat().st_mode & stat.S_IXUSR
            mode = pygit2.enums.FileMode.BLOB_EXECUTABLE if executable else (
                pygit2.enums.FileMode.BLOB)
            builder.insert(entry.name, blob, mode)
    return builder.write()


def signature(name: str, email: str) -> pygit2.Signature:
    return pygit2.Signature(name, email)


class RepoStore:
    """The bare repositories of every tenant."""

    def __init__(self, repos_dir: Path) -> None:
        self.repos_dir = Path(repos_dir)

    def path(self, tenant: str) -> Path:
        return self.repos_dir / f"{check_tenant_name(tenant)}.git"

    def exists(self, tenant: str) -> bool:
        return (self.path(tenant) / "HEAD").exists()

    def open(self, tenant: str) -> pygit2.Repository:
        if not self.exists(tenant):
            raise NotFoundError(f"tenant {tenant!r} has no repository")
        return pygit2.Repository(str(self.path(tenant)))

    def head(self, tenant: str, branch: str = MAIN) -> str | None:
        ref = self.open(tenant).references.get(branch)
        return None if ref is None else str(ref.resolve().target)

    def create(self, tenant: str, source_dir: Path, *, author: pygit2.Signature,
               message: str | None = None) -> str:
        """Create the tenant's bare repo whose first commit on main is ``source_dir``."""
        path = self.path(tenant)
        if self.exists(tenant):
            raise ConflictError(f"tenant {tenant!r} already has a repository")
        self.repos_dir.mkdir(parents=True, exist_ok=True)
        repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
        tree = build_tree(repo, Path(source_dir))
        text = message or f"Create tenant {tenant}\n\nRequested-by: {author.name} <{author.email}>\n"
        with self._ref_lock(tenant):
            commit = repo.create_commit(MAIN, author, author, text, tree, [])
        return str(commit)

    @contextmanager
    def _ref_lock(self, tenant: str) -> Iterator[None]:
        lock_path = self.path(tenant) / "hearth.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def commit_files(self, tenant: str, files: Mapping[str, bytes | None], *, message: str,
                     author: pygit2.Signature, committer: pygit2.Signature | None = None,
                     expected_head: str | None, branch: str = MAIN) -> str:
        """Commit ``files`` (path -> content, None deletes) on top of ``expected_head``.

        Raises ``ConflictError`` when the branch moved since the caller read it.
        """
        repo = self.open(tenant)
        index = pygit2.Index()
        if expected_head is not None:
            index.read_tree(repo[expected_head].tree)
        for path, content in files.items():
            if content is None:
                if path in index:
                    index.remove(path)
                continue
            blob = repo.create_blob(content)
            index.add(pygit2.IndexEntry(path, blob, pygit2.enums.FileMode.BLOB))
        tree = index.write_tree(repo)
        parents = [] if expected_head is None else [pygit2.Oid(hex=expected_head)]
        commit = repo.create_commit(None, author, committer or author, message, tree, parents)
        self.move_branch(tenant, branch=branch, new=str(commit), expected=expected_head)
        return str(commit)

    def move_branch(self, tenant: str, *, branch: str, new: str, expected: str | None) -> None:
        """Point ``branch`` at ``new`` if it still points at ``expected`` (None: must not exist)."""
        repo = self.open(tenant)
        with self._ref_lock(tenant):
            ref = repo.references.get(branch)
            current = None if ref is None else str(ref.resolve().target)
            if current != expected:
                raise ConflictError(
                    f"{branch} of tenant {tenant!r} moved: expected "
                    f"{(expected or 'none')[:12]}, found {(current or 'none')[:12]}; "
                    "re-read and try again"
                )
            if ref is None:
                repo.references.create(branch, pygit2.Oid(hex=new))
            else:
                ref.set_target(pygit2.Oid(hex=new))

    def tenants(self) -> list[str]:
        if not self.repos_dir.exists():
            return []
        return sorted(p.name.removesuffix(".git") for p in self.repos_dir.glob("*.git")
                      if (p / "HEAD").exists())
