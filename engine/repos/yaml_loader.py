"""Safe YAML loading for tenant documents, with positions for every error.

Tenant repos are untrusted input. The loader composes a file with libyaml
(``CSafeLoader``) and builds plain Python values itself, which is where the
rules live:

- only the core scalar tags (str, int, float, bool, null) and plain maps and
  sequences; any other tag (``!!python/object``, ``!vault``, ``!!binary``...)
  is rejected;
- a node reached twice (an alias) is rejected, so an alias bomb costs one
  node visit, not a billion;
- duplicate keys are rejected naming both lines;
- depth, node count and size are capped.

Positions are 1-based. The composed node tree is kept with the values, so a
later validation error (a pydantic ``loc`` path, or a cross-document finding)
can be pointed at a line and column without parsing again (``locate``).
"""

from __future__ import annotations

from dataclasses import dataclass
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

_constructor = yaml.constructor.SafeConstructor()


class YamlError(Exception):
    """A file could not be loaded; ``issue`` says where and why."""

    def __init__(self, issue: ConfigIssue) -> None:
        self.issue = issue
        super().__init__(str(issue))


@dataclass(frozen=True, slots=True)
class LoadedYaml:
    """The values of one YAML document and the node tree they came from."""

    data: Any
    root: Node | None


def _position(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.seen: set[int] = set()

    def fail(self, node: Node, message: str) -> YamlError:
        line, column = _position(node)
        return YamlError(ConfigIssue(self.file, line, column, message))

    def build(self, node: Node, depth: int) -> Any:
        if id(node) in self.seen:
            raise self.fail(node, "anchors and aliases (&name / *name) are not allowed; "
                                  "write the value out")
        self.seen.add(id(node))
        if len(self.seen) > MAX_NODES:
            raise self.fail(node, f"document has more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise self.fail(node, f"document nests deeper than {MAX_DEPTH} levels")
        tag = node.tag
        if isinstance(node, ScalarNode):
            return self.scalar(node, tag)
        if isinstance(node, SequenceNode):
            if tag != _SEQ:
                raise self.fail(node, f"tag {tag!r} is not allowed; use a plain list")
            return [self.build(item, depth + 1) for item in node.value]
        if isinstance(node, MappingNode):
            if tag != _MAP:
                raise self.fail(node, f"tag {tag!r} is not allowed; use a plain mapping")
            return self.mapping(node, depth)
        raise self.fail(node, "unsupported YAML node")  # pragma: no cover - composer makes none

    def scalar(self, node: ScalarNode, tag: str) -> Any:
        if tag == _STR or tag == _TIMESTAMP:
            return node.value
        if tag == _INT:
            return _constructor.construct_yaml_int(node)
        if tag == _BOOL:
            return _constructor.construct_yaml_bool(node)
        if tag == _NULL:
            return None
        if tag == _FLOAT:
            return _constructor.construct_yaml_float(node)
        raise self.fail(node, f"tag {tag!r} is not allowed in tenant documents")

    def mapping(self, node: MappingNode, depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _CORE + "merge":
                raise self.fail(key_node, "merge keys (<<) are not allowed")
            key = self.build(key_node, depth + 1)
            if not isinstance(key, str | int | bool) or key is None:
                raise self.fail(key_node, "mapping keys must be plain strings")
            if key in first_line:
                line, column = _position(key_node)
                raise self.fail(
                    key_node,
                    f"duplicate key {key!r} (lines {first_line[key]} and {line}); "
                    "each key may appear once",
                )
            first_line[key] = _position(key_node)[0]
            out[key] = self.build(value_node, depth + 1)
        return out


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
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.CSafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "syntax error"
        if exc.context:
            problem = f"{problem} ({exc.context})"
        raise YamlError(ConfigIssue(file, line, column, f"YAML syntax error: {problem}")) from None
    except yaml.YAMLError as exc:
        raise YamlError(ConfigIssue(file, 1, 1, f"YAML error: {exc}")) from None
    if len(nodes) > 1:
        line, column = _position(nodes[1])
        raise YamlError(ConfigIssue(file, line, column,
                                    "one document per file; remove the extra '---' document"))
    if not nodes:
        return LoadedYaml(None, None)
    root = nodes[0]
    return LoadedYaml(_Builder(file).build(root, 0), root)


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
