"""A pytest plugin for `make mutation` only (``-p tests.mutation_order`` in [tool.mutmut]).

mutmut runs each mutant's covering tests with ``-x``, so the first failing test
ends the run. Running the tests without services first (the planner's, the YAML
loader's, ``api.auth``'s pure parts) kills most mutants before an API test pays
for its PostgreSQL database and app; the order within each group is kept.
"""

from __future__ import annotations

import pytest

_FIRST = ("tests/planning/", "tests/repos/", "tests/api/test_auth_unit.py", "tests/reconcile/")


def _rank(item: pytest.Item) -> int:
    path = item.nodeid.removeprefix("mutants/")
    return next((i for i, prefix in enumerate(_FIRST) if path.startswith(prefix)), len(_FIRST))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: each group keeps pytest's order
