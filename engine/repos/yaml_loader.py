"""Safe YAML loading for tenant documents, with positions for every error.

Tenant repos are untrusted input. The loader builds values with libyaml
(``CSafeLoader``) and a constructor that enforces the rules as it goes:

- only the core scalar tags (str, int, float, bool, null) and plain maps and
  sequences, plus ``!vault`` on a scalar holding an ansible-vault value (what
  ``ansible-vault encrypt_string`` prints; it loads as that text); any other tag
  (``!!python/object``, ``!!binary``...) is rejected;
- a node reached twice (an alias) is rejected, so an alias bomb costs one
  node visit, not a billion;
- duplicate keys are rejected naming both lines;
- depth, node count and size are capped.

Positions are 1-based. A valid document keeps only its values and text; when
a later check fails (a pydantic ``loc`` path, or a cross-document finding) the
node tree is composed on demand and the path pointed at a line and column
(``locate``), so the common, valid case never pays for positions.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.errors import ConfigIssue

MAX_FILE_BYTES = 256 * 1024
MAX_DEPTH = 24
MAX_NODES = 50_000

_CORE = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_CORE + t for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ, _TIMESTAMP = _CORE + "map", _CORE + "seq", _CORE + "timestamp"

_SAFE_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _MAP, _SEQ, _TIMESTAMP})
_VAULT_TAG = "!vault"
_VAULT_PREFIX = "$ANSIBLE_VAULT;"


class YamlError(Exception):
    """A file could not be loaded; ``issue`` says where and why."""

    def __init__(self, issue: ConfigIssue) -> None:
        self.issue = issue
        super().__init__(str(issue))


class _Refused(yaml.MarkedYAMLError):
    """Raised inside the constructor; carries the node's mark out of libyaml's loader."""


class _TenantLoader(yaml.CSafeLoader):
    """libyaml's safe loader with Hearth's rules enforced while values are built.

    Building through the loader (not walking a composed tree in Python) keeps the
    hot path in libyaml: a 1,000-file tenant loads in a third of the time.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.node_count = 0

    @staticmethod
    def _alias(node: Node, where: Node) -> _Refused:
        line = node.start_mark.line + 1
        return _Refused(problem=f"anchors and aliases (&name / *name) are not allowed: the "
                                f"value defined at line {line} is reused here; write it out",
                        problem_mark=where.start_mark)

    def construct_sequence(self, node: SequenceNode, deep: bool = False) -> list[Any]:
        for child in node.value:
            if child in self.constructed_objects:
                raise self._alias(child, node)
        return [self.construct_object(child, deep=deep) for child in node.value]

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        if node in self.constructed_objects:
            # An alias yields the anchored node itself, so a bomb stops at its first reuse.
            raise self._alias(node, node)
        self.node_count += 1
        if self.node_count > MAX_NODES:
            raise _Refused(problem=f"document has more than {MAX_NODES} values",
                           problem_mark=node.start_mark)
        if node.tag == _VAULT_TAG:
            return self._vault(node)
        if node.tag not in _SAFE_TAGS:
            raise _Refused(problem=f"tag {node.tag!r} is not allowed in tenant documents",
                           problem_mark=node.start_mark)
        return super().construct_object(node, deep)

    def _vault(self, node: Node) -> str:
        if not isinstance(node, ScalarNode) or not node.value.lstrip().startswith(_VAULT_PREFIX):
            raise _Refused(problem="!vault must tag an ansible-vault value ('$ANSIBLE_VAULT;"
                                   "1.1;AES256' and its lines)", problem_mark=node.start_mark)
        self.constructed_objects[node] = node.value
        return node.value

    def construct_yaml_timestamp(self, node: ScalarNode) -> str:
        return node.value  # dates stay text; the schema decides what they mean

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _CORE + "merge":
                raise _Refused(problem="merge keys (<<) are not allowed",
                               problem_mark=key_node.start_mark)
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | bool) or key is None:
                raise _Refused(problem="mapping keys must be plain strings",
                               problem_mark=key_node.start_mark)
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise _Refused(problem=f"duplicate key {key!r} (lines {first_line[key]} and "
                                       f"{line}); each key may appear once",
                               problem_mark=key_node.start_mark)
            first_line[key] = line
            if value_node in self.constructed_objects:
                raise self._alias(value_node, key_node)
            out[key] = self.construct_object(value_node, deep=deep)
        return out


_TenantLoader.add_constructor(_TIMESTAMP, _TenantLoader.construct_yaml_timestamp)


class LoadedYaml:
    """The values of one YAML document; its node tree is composed only when asked for."""

    __slots__ = ("_root", "_text", "data")

    def __init__(self, data: Any, text: str) -> None:
        self.data = data
        self._text = text
        self._root: Node | bool | None = False

    @property
    def root(self) -> Node | None:
        """The composed node tree, for pointing errors at lines (parsed again on demand)."""
        if self._root is False:
            self._root = yaml.compose(self._text, Loader=yaml.CSafeLoader)
        return self._root  # type: ignore[return-value]


def _depth(value: Any) -> int:
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if level > deepest:
            deepest = level
            if deepest > MAX_DEPTH:
                return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item if isinstance(v, dict | list))
    return deepest


def load_yaml(text: bytes | str, *, file: str) -> LoadedYaml:
    """Load one YAML document safely; raise ``YamlError`` with file, line and column."""
    if len(text) > MAX_FILE_BYTES:
        raise YamlError(ConfigIssue(
            file, 1, 1, f"file is {len(text)} bytes; the limit is {MAX_FILE_BYTES} bytes"))
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise YamlError(ConfigIssue(file, 1, 1, f"file is not UTF-8: {exc.reason}")) from None
    loader = _TenantLoader(text)
    try:
        if not loader.check_node():
            return LoadedYaml(None, text)
        data = loader.construct_document(loader.get_node())
        if loader.check_node():
            extra = loader.get_node()
            raise _Refused(problem="one document per file; remove the extra '---' document",
                           problem_mark=extra.start_mark)
    except _Refused as exc:
        mark = exc.problem_mark
        raise YamlError(ConfigIssue(file, mark.line + 1, mark.column + 1, str(exc.problem))
                        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "syntax error"
        if exc.context:
            problem = f"{problem} ({exc.context})"
        raise YamlError(ConfigIssue(file, line, column, f"YAML syntax error: {problem}")) from None
    except yaml.YAMLError as exc:
        raise YamlError(ConfigIssue(file, 1, 1, f"YAML error: {exc}")) from None
    finally:
        loader.dispose()
    loaded = LoadedYaml(data, text)
    if _depth(data) > MAX_DEPTH:
        line, column = _deepest(loaded.root)
        raise YamlError(ConfigIssue(file, line, column,
                                    f"document nests deeper than {MAX_DEPTH} levels"))
    return loaded


def _deepest(root: Node | None) -> tuple[int, int]:
    """Position of the first node nested deeper than MAX_DEPTH."""
    stack = [(root, 0)] if root is not None else []
    while stack:
        node, level = stack.pop()
        if level > MAX_DEPTH:
            return _position(node)
        if isinstance(node, SequenceNode):
            stack.extend((child, level + 1) for child in reversed(node.value))
        elif isinstance(node, MappingNode):
            stack.extend((v, level + 1) for _, v in reversed(node.value))
    return 1, 1


def _position(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def locate(root: Node | None, path: tuple[Any, ...]) -> tuple[int, int]:
    """Line and column of ``path`` inside the document; the deepest existing prefix wins.

    A mapping entry is located at its key, so "unknown field" and "wrong type"
    errors point at the line a person reads.
    """
    if root is None:
        return 1, 1
    node = root
    position = _position(root)
    for step in path:
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.value == str(step):
                    position = _position(key_node)
                    node = value_node
                    break
            else:
                return position
        elif isinstance(node, SequenceNode) and isinstance(step, int):
            if 0 <= step < len(node.value):
                node = node.value[step]
                position = _position(node)
            else:
                return position
        else:
            return position
    return position
