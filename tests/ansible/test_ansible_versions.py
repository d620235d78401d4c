"""The installed ansible-core and ansible are the ones pyproject.toml supports.

The roles and the engine depend on ansible-core 2.19's behaviour (data tagging:
the extravars' single `!unsafe` on the `hearth` mapping, see ansible/README.md);
another release must be tried before the pin moves.
"""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _pins() -> dict[str, Requirement]:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return {r.name: r for r in map(Requirement, deps)}


def test_the_pins_are_the_supported_range() -> None:
    pins = _pins()
    assert str(pins["ansible-core"].specifier) == "<2.20,>=2.19"
    assert str(pins["ansible"].specifier) == "<13,>=12"


@pytest.mark.parametrize("package", ["ansible-core", "ansible"])
def test_the_installed_release_is_in_the_supported_range(package: str) -> None:
    pin = _pins()[package]
    installed = version(package)
    assert pin.specifier.contains(installed, prereleases=True), (
        f"{package} {installed} is installed, but Hearth supports {package}{pin.specifier} "
        "(pyproject.toml): install a supported release, or test the roles on this one "
        "and move the pin")
