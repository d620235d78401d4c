"""Names checked with Python regexes match the whole value: ``$`` alone would let a
trailing newline through ("acme\\n"), and such a name would reach git refs, SQL and
Ansible's user module."""

from __future__ import annotations

import pydantic
import pytest

from engine.errors import InvalidInputError, RevisionError
from engine.repos.reader import resolve_revision
from engine.repos.store import check_tenant_name
from schemas.config import User


@pytest.mark.parametrize("name", ["acme\n", "acme\n\n", "acme\nevil"])
def test_tenant_name_with_a_newline_is_refused(name: str) -> None:
    with pytest.raises(InvalidInputError):
        check_tenant_name(name)
    assert check_tenant_name("acme") == "acme"


@pytest.mark.parametrize("name", ["ann\n", "ann\r\n"])
def test_posix_user_name_with_a_newline_is_refused(name: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        User(name=name)
    assert User(name="ann").name == "ann"


@pytest.mark.parametrize("rev", ["refs/heads/main\n", "0" * 40 + "\n"])
def test_revision_with_a_newline_is_refused_before_git_sees_it(rev: str, tmp_path) -> None:
    import pygit2

    repo = pygit2.init_repository(str(tmp_path / "r.git"), bare=True, initial_head="main")
    with pytest.raises(RevisionError, match="not accepted"):
        resolve_revision(repo, rev)
