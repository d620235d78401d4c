"""Layers that hold: the import graph of ``engine/``, ``api/`` and ``schemas/``.

Every ``import`` in those packages is read from the source (with ``ast``, so
nothing is executed), function-local imports included: an import hidden in a
function still ties two modules together. Imports under ``if TYPE_CHECKING:``
are left out (they never run). The test fails on a cycle between modules and
on an edge the architecture forbids (``docs/architecture.md``, "Packages").
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "api", "schemas")

FORBIDDEN: list[tuple[str, str, str]] = [
    # (importer prefix, imported prefix, why)
    ("api", "engine.planning", "the API asks engine.reconcile.source, never the planner"),
    ("api", "engine.execution", "the API never reaches the executor"),
    ("api", "engine.reconcile.reconciler", "reconcile internals are the worker's"),
    ("api", "engine.reconcile.worker", "reconcile internals are the worker's"),
    ("api", "engine.reconcile.reaper", "reconcile internals are the worker's"),
    ("engine.execution", "engine.planning", "execution renders what the plan says"),
    ("engine.planning", "engine.db", "planning is pure"),
    ("engine.planning", "engine.repos", "planning is pure"),
    ("engine.planning", "engine.reconcile", "planning is pure"),
    ("engine.planning", "engine.execution", "planning is pure"),
    ("engine.repos", "engine.db", "git and PostgreSQL are separate adapters"),
    ("engine.db", "engine.repos", "git and PostgreSQL are separate adapters"),
    ("schemas", "engine", "schemas are values with no I/O"),
    ("schemas", "api", "schemas are values with no I/O"),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            # ``from engine.db import runs`` imports the module engine.db.runs
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of engine/api/schemas it imports (only ones that exist)."""
    files = {_module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        imported = _imports(ast.parse(path.read_text(), str(path)), module,
                            path.name == "__init__.py")
        graph[module] = {name for name in imported if name in files and name != module}
    return graph


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def forbidden_edges(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{importer} -> {imported} ({why})"
        for importer, targets in graph.items() for imported in targets
        for source, target, why in FORBIDDEN
        if _within(importer, source) and _within(imported, target)
    )


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def connect(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


# A package's __init__ importing its own modules is not a layering cycle.
def _without_package_inits(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {m: {t for t in targets if not _within(t, m)} for m, targets in graph.items()}


def test_no_forbidden_imports() -> None:
    assert forbidden_edges(import_graph()) == []


def test_no_import_cycles() -> None:
    assert cycles(_without_package_inits(import_graph())) == []


# The checker itself, on literal graphs: a checker that finds nothing proves nothing.
@pytest.mark.parametrize(("graph", "expected"), [
    pytest.param({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]],
                 id="three-cycle"),
    pytest.param({"a": {"b"}, "b": set()}, [], id="no-cycle"),
    pytest.param({"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"c"}}, [["a", "b"], ["c", "d"]],
                 id="two-cycles"),
])
def test_cycles_finds_them(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert cycles(graph) == expected


@pytest.mark.parametrize(("edge", "expected"), [
    pytest.param(("api.routes.runs", "engine.planning.plan"),
                 ["api.routes.runs -> engine.planning.plan (the API asks engine.reconcile.source, "
                  "never the planner)"], id="api-to-planning"),
    pytest.param(("engine.execution.extravars", "engine.planning.plan"),
                 ["engine.execution.extravars -> engine.planning.plan (execution renders what "
                  "the plan says)"], id="execution-to-planning"),
    pytest.param(("engine.db.tenants", "engine.repos.store"),
                 ["engine.db.tenants -> engine.repos.store (git and PostgreSQL are separate "
                  "adapters)"], id="db-to-repos"),
    pytest.param(("schemas.plan", "engine.errors"),
                 ["schemas.plan -> engine.errors (schemas are values with no I/O)"],
                 id="schemas-to-engine"),
    pytest.param(("api.routes.runs", "engine.reconcile.source"), [], id="api-to-source-allowed"),
    pytest.param(("engine.planningx", "engine.db"), [], id="prefix-is-a-package-not-a-string"),
])
def test_forbidden_edges_are_found(edge: tuple[str, str], expected: list[str]) -> None:
    assert forbidden_edges({edge[0]: {edge[1]}}) == expected


def test_imports_are_read_from_functions_but_not_type_checking() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from engine.db import runs\n"
        "if TYPE_CHECKING:\n"
        "    from api.models import ApplianceOut\n"
        "def f():\n"
        "    from engine.repos.store import RepoStore\n"
        "    import engine.settings\n"
    )
    assert _imports(ast.parse(source), "engine.x", False) == {
        "typing", "typing.TYPE_CHECKING", "engine.db", "engine.db.runs",
        "engine.repos.store", "engine.repos.store.RepoStore", "engine.settings"}


def _local_imports_without_reason() -> list[str]:
    """Function-local imports whose block has no comment line right above it."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text().splitlines()
            for function in ast.walk(ast.parse("\n".join(lines))):
                if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                imports = [n for n in function.body if isinstance(n, (ast.Import, ast.ImportFrom))]
                if imports and not lines[imports[0].lineno - 2].strip().startswith("#") and (
                        "#" not in lines[imports[0].lineno - 1]):
                    found.append(f"{path.relative_to(ROOT)}:{imports[0].lineno}")
    return found


def test_function_local_imports_say_why() -> None:
    """A function-local import must save start-up time and say so in a comment; it may not
    hide a cycle (the cycle test reads function bodies too)."""
    assert _local_imports_without_reason() == []
