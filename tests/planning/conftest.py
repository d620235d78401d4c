"""Fixtures of the planner tests: one realistic appliance, desired and converged observed."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from .helpers import load_fixture


@pytest.fixture(scope="session")
def desired_data() -> dict[str, Any]:
    return load_fixture("desired_office.yaml")


@pytest.fixture(scope="session")
def observed_data() -> dict[str, Any]:
    return load_fixture("observed_office.yaml")


@pytest.fixture
def desired_doc(desired_data: dict[str, Any]) -> dict[str, Any]:
    """A fresh deep copy to mutate."""
    return copy.deepcopy(desired_data)


@pytest.fixture
def observed_doc(observed_data: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(observed_data)
