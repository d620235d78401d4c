"""Round-trip edits of tenant YAML: change a value, keep everything else byte for byte.

The assistant and ``PUT …/branches/{b}/files/{path}`` change documents people
also edit by hand, so an edit must not reformat them: ruamel.yaml's
round-trip mode keeps comments, key order, quoting, flow style and
indentation of everything the edit does not touch, and the golden files in
``tests/repos/golden/`` prove that a one-user edit changes only that user's
lines.

An edit is a list of ``Edit`` operations, each on a path from the document
root. A path step is a mapping key, a list index, or a selector
``name=<value>`` that picks the list item whose ``name`` is that value (how
users, groups, shares and zones are addressed). Operations only assign or
replace (``set``), add to a list (``append``) or drop a key or item
(``delete``); nothing is re-sorted or re-emitted. The result is loaded and
validated again (``engine.repos.reader.parse_document``) and refused with
file:line:col issues when it does not validate.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from engine.errors import ConfigError, ConfigIssue, InvalidInputError
from engine.repos.reader import parse_document
from engine.repos.yaml_loader import YamlError, load_yaml
from schemas.config import kind_for_path

PathStep = str | int


@dataclass(frozen=True, slots=True)
class Edit:
    op: Literal["set", "append", "delete"]
    path: tuple[PathStep, ...]
    value: Any = None


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines (keys, vault blocks)
    return yaml


_INDENTS = ((2, 4, 2), (2, 2, 0), (4, 4, 2), (4, 6, 4), (2, 4, 0))
"""(mapping, sequence, dash offset) styles people write; ``(2, 4, 2)`` is ``  - name:``."""


def _load_with_style(text: str, file: str) -> tuple[YAML, Any]:
    """Load ``text`` with the indentation style that re-emits it unchanged (or the common one).

    The text first goes through the safe loader every tenant document goes through
    (no tags but ``!vault``, no anchors or aliases, size, depth and node caps), so the
    round-trip loader below only ever sees plain data."""
    try:
        load_yaml(text, file=file)
    except YamlError as exc:
        raise ConfigError([exc.issue]) from None
    chosen = None
    for mapping, sequence, offset in _INDENTS:
        yaml = _yaml()
        yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
        try:
            root = yaml.load(text)
        except YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise ConfigError([ConfigIssue(
                file, (mark.line + 1) if mark else 1, (mark.column + 1) if mark else 1,
                f"cannot edit: {getattr(exc, 'problem', exc)}")]) from None
        if chosen is None:
            chosen = (yaml, root)
        out = io.StringIO()
        yaml.dump(root, out)
        if out.getvalue() == text:
            return yaml, root  # dumping does not change the loaded tree
    assert chosen is not None
    return chosen


def _step(node: Any, step: PathStep, *, create: bool) -> Any:
    if isinstance(step, str) and step.startswith("name=") and isinstance(node, CommentedSeq):
        wanted = step[5:]
        for item in node:
            if isinstance(item, dict) and str(item.get("name")) == wanted:
                return item
        raise InvalidInputError(f"no item named {wanted!r}")
    if isinstance(node, CommentedSeq):
        if not isinstance(step, int) or not -len(node) <= step < len(node):
            raise InvalidInputError(f"list index {step!r} is out of range")
        return node[step]
    if isinstance(node, CommentedMap):
        if step not in node:
            if not create:
                raise InvalidInputError(f"no key {step!r}")
            node[step] = CommentedMap()
        return node[step]
    raise InvalidInputError(f"cannot step into a scalar with {step!r}")


def _apply(root: Any, edit: Edit) -> None:
    if not edit.path:
        raise InvalidInputError("an edit needs a path")
    parent = root
    for step in edit.path[:-1]:
        parent = _step(parent, step, create=edit.op != "delete")
    last = edit.path[-1]
    if edit.op == "append":
        target = _step(parent, last, create=False) if not (
            isinstance(parent, CommentedMap) and last not in parent) else None
        if target is None:
            parent[last] = target = CommentedSeq()
        if not isinstance(target, CommentedSeq):
            raise InvalidInputError(f"{'/'.join(map(str, edit.path))} is not a list")
        target.append(edit.value)
        return
    if isinstance(last, str) and last.startswith("name=") and isinstance(parent, CommentedSeq):
        item = _step(parent, last, create=False)
        index = next(i for i, x in enumerate(parent) if x is item)
        if edit.op == "delete":
            del parent[index]
        else:
            parent[index] = edit.value
        return
    if edit.op == "delete":
        if isinstance(parent, CommentedSeq):
            _step(parent, last, create=False)
            del parent[last]  # type: ignore[arg-type]
        elif isinstance(parent, CommentedMap) and last in parent:
            del parent[last]
        else:
            raise InvalidInputError(f"no key {last!r} to delete")
        return
    if isinstance(parent, CommentedSeq):
        _step(parent, last, create=False)
    elif not isinstance(parent, CommentedMap):
        raise InvalidInputError(f"cannot set {last!r} inside a scalar")
    parent[last] = edit.value


def edit_yaml(content: bytes, edits: list[Edit], *, file: str) -> bytes:
    """Apply ``edits`` to the YAML ``content`` of repo path ``file`` and re-validate it.

    Raises ``InvalidInputError`` for an edit that does not fit the document and
    ``ConfigError`` (file:line:col) when the result is not a valid document.
    """
    kind = kind_for_path(file)
    if kind is None:
        raise InvalidInputError(f"{file} is not a document of the tenant layout")
    text = content.decode("utf-8")
    yaml, root = _load_with_style(text, file)
    for edit in edits:
        _apply(root, edit)
    out = io.StringIO()
    yaml.dump(root, out)
    result = out.getvalue().encode("utf-8")
    check_document(result, file=file)
    return result


def check_document(content: bytes, *, file: str) -> None:
    """``ConfigError`` with file:line:col issues unless ``content`` is a valid document."""
    kind = kind_for_path(file)
    if kind is None:
        raise InvalidInputError(f"{file} is not a document of the tenant layout")
    parsed = parse_document(content, file=file, kind=kind)
    if parsed.issues:
        raise ConfigError([ConfigIssue(file, line, col, msg) for line, col, msg in parsed.issues])
