"""A branch that undoes a merged pull request, so a rollback is reviewed like any change.

The revert is computed against the merge commit's first parent (``main``
before the merge) and applied on top of today's ``main``; conflicts (later
changes touched the same lines) are reported with their paths.
"""

from __future__ import annotations

import pygit2

from engine.errors import ConflictError
from engine.pulls.branches import head_of, ref_of
from engine.repos.store import RepoStore


def free_branch_name(repo: pygit2.Repository, number: int) -> str:
    name = f"revert-{number}"
    suffix = 2
    while head_of(repo, name) is not None:
        name = f"revert-{number}-{suffix}"
        suffix += 1
    return name


def create_revert_branch(store: RepoStore, *, tenant: str, merge_commit: str, number: int,
                         title: str, author: pygit2.Signature) -> tuple[str, str, str]:
    """Commit the inverse of ``merge_commit`` on a new branch off main: (branch, main, head)."""
    repo = store.open(tenant)
    main = store.head(tenant)
    assert main is not None
    commit = repo[merge_commit]
    mainline = 1 if len(commit.parents) > 1 else 0
    index = repo.revert_commit(commit, repo[main], mainline=mainline)
    if index.conflicts is not None:
        paths = sorted({e.path for c in index.conflicts for e in c if e is not None})
        raise ConflictError("the revert conflicts with later changes in: " + ", ".join(paths))
    tree = index.write_tree(repo)
    if tree == repo[main].tree.id:
        raise ConflictError(f"main no longer contains the changes of #{number}")
    message = (f'Revert "{title}"\n\nThis reverts merge commit {merge_commit} of pull request '
               f"#{number}.\n\nReverts: #{number}\n")
    head = str(repo.create_commit(None, author, author, message, tree, [pygit2.Oid(hex=main)]))
    branch = free_branch_name(repo, number)
    store.move_branch(tenant, branch=ref_of(branch), new=head, expected=None)
    return branch, main, head
