"""Round-trip edits: golden files prove a one-user edit touches only that user's lines."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from engine.errors import ConfigError, InvalidInputError
from engine.repos.edit import Edit, edit_yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example-config-repo"
GOLDEN = Path(__file__).with_name("golden")


def _changed(before: bytes, after: bytes) -> list[str]:
    return [line.rstrip("\n") for line in difflib.unified_diff(
        before.decode().splitlines(True), after.decode().splitlines(True), n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_one_user_renamed_changes_one_line() -> None:
    source = (EXAMPLE / "users.yaml").read_bytes()
    out = edit_yaml(source, [Edit("set", ("spec", "users", "name=mlopez", "full_name"),
                                  "Dr. Miguel A. Lopez")], file="users.yaml")
    assert out == (GOLDEN / "users.rename-mlopez.yaml").read_bytes()
    assert _changed(source, out) == ["-      full_name: Dr. Miguel Lopez",
                                     "+      full_name: Dr. Miguel A. Lopez"]


def test_one_user_added_adds_only_its_lines() -> None:
    source = (EXAMPLE / "users.yaml").read_bytes()
    out = edit_yaml(source, [Edit("append", ("spec", "users"), {
        "name": "maria", "full_name": "Maria Garcia", "uid": 3007, "groups": ["reception"]})],
        file="users.yaml")
    assert out == (GOLDEN / "users.add-maria.yaml").read_bytes()
    assert _changed(source, out) == ["+    - name: maria", "+      full_name: Maria Garcia",
                                     "+      uid: 3007", "+      groups:",
                                     "+        - reception"]


def test_flow_list_keeps_its_style_and_comments_stay() -> None:
    source = (EXAMPLE / "users.yaml").read_bytes()
    out = edit_yaml(source, [Edit("append", ("spec", "users", "name=jchen", "groups"),
                                  "dentists")], file="users.yaml")
    assert _changed(source, out) == ["-      groups: [reception]",
                                     "+      groups: [reception, dentists]"]
    assert b"shell: /usr/sbin/nologin      # file shares and mail only, no shell login" in out


@pytest.mark.parametrize("path", ["tenant.yaml", "users.yaml", "groups.yaml",
                                  "appliances/front-office.yaml", "appliances/branch.yaml",
                                  "appliances/lab.yaml"])
def test_no_edit_is_byte_identical(path: str) -> None:
    source = (EXAMPLE / path).read_bytes()
    assert edit_yaml(source, [], file=path) == source


def test_an_edit_that_breaks_the_document_is_refused_with_a_location() -> None:
    source = (EXAMPLE / "users.yaml").read_bytes()
    with pytest.raises(ConfigError) as caught:
        edit_yaml(source, [Edit("set", ("spec", "users", "name=mlopez", "uid"), 12)],
                  file="users.yaml")
    assert [str(i) for i in caught.value.issues] == [
        "users.yaml:51:7: uid: Input should be greater than or equal to 1000"]


def test_unknown_user_is_an_input_error() -> None:
    source = (EXAMPLE / "users.yaml").read_bytes()
    with pytest.raises(InvalidInputError, match="no item named 'nobody'"):
        edit_yaml(source, [Edit("set", ("spec", "users", "name=nobody", "uid"), 4000)],
                  file="users.yaml")


@pytest.mark.parametrize(("text", "words"), [
    ("users:\n  - &u {name: a}\n  - *u\n", "aliases"),
    ("users:\n  - !!python/object/apply:os.system [id]\n", "not allowed"),
], ids=["alias", "python-tag"])
def test_an_edit_never_round_trips_what_the_safe_loader_refuses(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        edit_yaml(text.encode(), [Edit(op="set", path=("users", 0, "name"), value="b")],
                  file="users.yaml")
    issue = caught.value.issues[0]
    assert issue.file == "users.yaml" and issue.line in (2, 3) and words in issue.message
