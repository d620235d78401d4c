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


_ALIAS = ("anchors and aliases (&name / *name) are not allowed: the value defined at line 1 "
          "is reused here; write it out")
_VAULT = "!vault must tag an ansible-vault value ('$ANSIBLE_VAULT;1.1;AES256' and its lines)"


@pytest.mark.parametrize(("text", "line", "column", "message"), [
    pytest.param("a: 1\nb: 2\na: 3\n", 3, 1,
                 "duplicate key 'a' (lines 1 and 3); each key may appear once", id="duplicate-key"),
    pytest.param("a: !vault |\n  x\n", 1, 4, _VAULT, id="vault-not-vault"),
    pytest.param("a: !vault [1]\n", 1, 4, _VAULT, id="vault-on-a-list"),
    pytest.param("a: !secret x\n", 1, 4, "tag '!secret' is not allowed in tenant documents",
                 id="other-tag"),
    pytest.param("a: &x 1\nb: *x\n", 2, 1, _ALIAS, id="alias-as-value"),
    pytest.param("a: &x 1\nb: [*x]\n", 2, 4, _ALIAS, id="alias-in-flow-sequence"),
    pytest.param("- &x a\n- *x\n", 1, 3, _ALIAS, id="alias-in-block-sequence"),
    pytest.param("a: &x k\n*x : 1\n", 1, 4, _ALIAS, id="alias-as-key"),
    pytest.param("base: &b {x: 1}\nc:\n  <<: *b\n", 3, 3, "merge keys (<<) are not allowed",
                 id="merge-key"),
    pytest.param("a: 1\n---\nb: 2\n", 3, 1, "one document per file; remove the extra '---' document",
                 id="two-documents"),
    pytest.param("a: [1, 2\n", 2, 1, "YAML syntax error: did not find expected ',' or ']' "
                 "(while parsing a flow sequence)", id="syntax-with-context"),
    pytest.param("~: 1\n", 1, 1, "mapping keys must be plain strings", id="null-key"),
    pytest.param("1.5: a\n", 1, 1, "mapping keys must be plain strings", id="float-key"),
    pytest.param("? [a]\n: 1\n", 1, 3, "mapping keys must be plain strings", id="sequence-key"),
    pytest.param(b"a: \xff\n", 1, 1, "file is not UTF-8: invalid start byte", id="not-utf-8"),
    pytest.param("[" + "0," * 50_000 + "]", 1, 100_000, "document has more than 50000 values",
                 id="node-50001"),
    pytest.param("[" * 26 + "]" * 26, 1, 26, "document nests deeper than 24 levels",
                 id="depth-25"),
    pytest.param("a: " + "b" * (256 * 1024 - 3) + "\n", 1, 1,
                 "file is 262145 bytes; the limit is 262144 bytes", id="one-byte-too-many"),
])
def test_each_refusal_says_where_and_why(text, line, column, message) -> None:
    with pytest.raises(YamlError) as info:
        load_yaml(text, file="tenant/appliances/x.yaml")
    issue = info.value.issue
    assert (issue.file, issue.line, issue.column, issue.message) == (
        "tenant/appliances/x.yaml", line, column, message)
    assert str(info.value) == str(issue)


@pytest.mark.parametrize(("text", "data"), [
    pytest.param("", None, id="empty"),
    pytest.param("# only a comment\n", None, id="comment"),
    pytest.param("a: é\n".encode(), {"a": "é"}, id="utf-8-bytes"),
    pytest.param("1: a\nb: [x, y]\n", {1: "a", "b": ["x", "y"]}, id="int-key-and-list"),
    pytest.param("a: " + "b" * (256 * 1024 - 4) + "\n", {"a": "b" * (256 * 1024 - 4)},
                 id="exactly-the-size-limit"),
    pytest.param("[" * 25 + "]" * 25, [[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]],
                 id="depth-24"),
])
def test_documents_at_the_limits_load(text, data) -> None:
    assert load_yaml(text, file="x").data == data


def test_the_node_limit_counts_every_value() -> None:
    assert len(load_yaml("[" + "0," * 49_999 + "]", file="x").data) == 49_999


def test_a_valid_document_composes_its_nodes_only_when_asked() -> None:
    loaded = load_yaml("a:\n  b: 1\n", file="x")
    assert loaded._root is False
    root = loaded.root
    assert (root.start_mark.line, root.start_mark.column) == (0, 0)
    assert loaded.root is root  # composed once
    assert load_yaml("", file="x").root is None


@pytest.mark.parametrize(("path", "where"), [
    ((), (1, 1)),
    (("spec",), (1, 1)),
    (("spec", "list"), (2, 3)),
    (("spec", "list", 0), (3, 7)),
    (("spec", "list", 1), (4, 7)),
    (("spec", "list", 1, "name"), (4, 7)),
    (("spec", "list", 1, "x"), (5, 7)),
    (("spec", "list", 2), (2, 3)),
    (("spec", "list", -1), (2, 3)),
    (("spec", "list", "0"), (2, 3)),
    (("spec", "list", 0, "deeper"), (3, 7)),
    (("nothing", "here"), (1, 1)),
], ids=["root", "top-key", "nested-key", "item-0", "item-1", "key-in-item", "second-key",
        "index-past-the-end", "negative-index", "text-index", "below-a-scalar", "missing-key"])
def test_locate_keeps_the_deepest_prefix_found(path, where) -> None:
    loaded = load_yaml("spec:\n  list:\n    - a\n    - name: b\n      x: 2\n", file="x")
    assert locate(loaded.root, path) == where


def test_locate_without_a_document_is_the_first_line() -> None:
    assert locate(None, ("a", 1)) == (1, 1)


def test_a_quoted_vault_value_may_start_with_spaces() -> None:
    text = 'a: !vault "  $ANSIBLE_VAULT;1.1;AES256\\n6162"\n'
    assert load_yaml(text, file="x").data == {"a": "  $ANSIBLE_VAULT;1.1;AES256\n6162"}


def test_depth_through_mappings_points_at_the_first_map_too_deep() -> None:
    # 26 nested flow mappings: the innermost one is 25 levels down, at column 1 + 4 * 25.
    text = "{a: " * 26 + "1" + "}" * 26
    with pytest.raises(YamlError) as info:
        load_yaml(text, file="x")
    assert (info.value.issue.line, info.value.issue.column, info.value.issue.message) == (
        1, 101, "document nests deeper than 24 levels")
    assert load_yaml("{a: " * 25 + "1" + "}" * 25, file="x").data is not None


def test_a_control_character_is_refused_at_the_start_of_the_file() -> None:
    # libyaml's reader refuses it before any node exists: the error carries no mark.
    with pytest.raises(YamlError) as info:
        load_yaml("a: \x01\n", file="x.yaml")
    issue = info.value.issue
    assert (issue.file, issue.line, issue.column, issue.message) == (
        "x.yaml", 1, 1, "YAML error: unacceptable character #x0001: control characters are not "
        'allowed\n  in "<unicode string>", position 3')
