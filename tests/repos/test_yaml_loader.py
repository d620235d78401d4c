from __future__ import annotations

import pytest

from engine.repos.yaml_loader import MAX_DEPTH, YamlError, load_yaml, locate


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        pytest.param("a: 1\nb: 2\na: 3\n", (3, 1), "lines 1 and 3", id="duplicate-key"),
        pytest.param("a: !vault |\n  x\n", (1, 4), "ansible-vault value", id="vault-not-vault"),
        pytest.param("a: !vault [1]\n", (1, 4), "ansible-vault value", id="vault-on-a-list"),
        pytest.param("a: !secret x\n", (1, 4), "not allowed", id="other-tag"),
        pytest.param("a: !!binary aGk=\n", (1, 4), "not allowed", id="binary"),
        pytest.param("a: &x 1\nb: *x\n", (2, 1), "aliases", id="alias"),
        pytest.param("base: &b {x: 1}\nc:\n  <<: *b\n", (3, 3), "merge", id="merge-key"),
        pytest.param("a: 1\n---\nb: 2\n", (3, 1), "one document", id="two-documents"),
        pytest.param("a: [1, 2\n", (2, 1), "syntax", id="syntax"),
        pytest.param("[" * (MAX_DEPTH + 2) + "]" * (MAX_DEPTH + 2), (1, MAX_DEPTH + 2), "deeper",
                     id="depth"),
    ],
)
def test_rejections_name_line_and_column(text: str, where: tuple[int, int], words: str) -> None:
    with pytest.raises(YamlError) as info:
        load_yaml(text, file="x.yaml")
    issue = info.value.issue
    assert (issue.file, issue.line, issue.column) == ("x.yaml", *where)
    assert words in issue.message


def test_vault_tag_as_ansible_vault_prints_it_loads_as_its_text() -> None:
    text = ("password: !vault |\n          $ANSIBLE_VAULT;1.1;AES256\n          6162\n"
            "other: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6364\n")
    assert load_yaml(text, file="x").data == {
        "password": "$ANSIBLE_VAULT;1.1;AES256\n6162\n",
        "other": "$ANSIBLE_VAULT;1.1;AES256\n6364\n"}


def test_scalars_follow_yaml_core_rules() -> None:
    loaded = load_yaml("a: 1\nb: true\nc: null\nd: 1.5\ne: 2024-01-01\nf: '1'\n", file="x")
    assert loaded.data == {"a": 1, "b": True, "c": None, "d": 1.5, "e": "2024-01-01", "f": "1"}


def test_locate_points_at_keys_and_items() -> None:
    loaded = load_yaml("spec:\n  list:\n    - a\n    - name: b\n      x: 2\n", file="x")
    assert locate(loaded.root, ("spec", "list", 1, "x")) == (5, 7)
    assert locate(loaded.root, ("spec", "list", 0)) == (3, 7)
    assert locate(loaded.root, ("spec", "missing", 3)) == (1, 1)


def test_oversized_text_is_refused_before_parsing() -> None:
    with pytest.raises(YamlError, match="limit"):
        load_yaml("a: b\n" * 100_000, file="big.yaml")


@pytest.mark.parametrize("text", ["a: &x k\n*x : 1\n", "&x a: 1\nb:\n  *x : 2\n",
                                  "- &x k\n- {*x : 1}\n"],
                         ids=["scalar-key", "anchored-key-reused", "key-in-flow-mapping"])
def test_an_alias_used_as_a_key_is_refused(text: str) -> None:
    with pytest.raises(YamlError) as info:
        load_yaml(text, file="x.yaml")
    assert "aliases" in info.value.issue.message
    assert (info.value.issue.file, info.value.issue.line) == ("x.yaml", 1)
