"""Shared values of the planner tests: the clock, the revision, fixture loading."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from schemas.config import DesiredAppliance
from schemas.heartbeat import ObservedState

FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
REVISION = "a" * 40


def load_fixture(name: str) -> dict[str, Any]:
    return yaml.safe_load((FIXTURES / name).read_text())


def desired_of(doc: dict[str, Any]) -> DesiredAppliance:
    return DesiredAppliance.model_validate(doc)


def observed_of(doc: dict[str, Any]) -> ObservedState:
    return ObservedState.model_validate(doc)
