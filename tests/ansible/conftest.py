"""Fixtures of the Ansible tests: the appliance image, roots cloned from it, runs.

The image is built once per machine (debootstrap, about a minute here plus
downloads; installing debootstrap with apt first when it is missing) and cached
under ``$HEARTH_DATA_DIR/images`` (default /var/lib/hearth/images), keyed by
the package list and the build recipe, so later sessions only clone it (about
a second per root). Roots and run directories live in pytest's temporary
directory and are removed (unmounting anything left mounted) at session end.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.appliances.commands import default_cache_dir
from engine.appliances.image import build_image
from engine.appliances.sim import clone_roots, remove_root
from engine.execution.ansible import AnsibleExecutor, RunResult
from engine.execution.extravars import appliance_vars, build_extravars
from engine.execution.workspace import Target
from schemas.config import DesiredAppliance

_run_ids = itertools.count(1)


def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("appliance roots need root (chroot, debootstrap): run the suite as root")


@pytest.fixture(scope="session")
def appliance_image() -> Path:
    _need_root()
    return build_image(cache_dir=default_cache_dir())


@pytest.fixture(scope="session")
def roots_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("roots")
    yield path
    for root in path.iterdir():
        if root.is_dir():
            remove_root(root)


@pytest.fixture(scope="session")
def clone(appliance_image: Path, roots_dir: Path) -> Callable[..., list[Path]]:
    """Clone fresh roots: ``clone(["a", "b"], hostnames={...})``."""

    def make(names: list[str], *, hostnames: dict[str, str] | None = None) -> list[Path]:
        return clone_roots(appliance_image, roots_dir, names, hostnames=hostnames)

    return make


@pytest.fixture(scope="session")
def executor(tmp_path_factory: pytest.TempPathFactory) -> AnsibleExecutor:
    return AnsibleExecutor(data_dir=tmp_path_factory.mktemp("hearth-data"), timeout=600)


@pytest.fixture(scope="session")
def converge(executor: AnsibleExecutor) -> Callable[..., RunResult]:
    """Run the playbooks for ``{root: (desired, appliance_vars kwargs)}``."""

    def run(appliances: dict[Path, DesiredAppliance], *, domains: list[str] | None = None,
            check: bool = False, **vars_kwargs: Any) -> RunResult:
        items = [appliance_vars(d, **vars_kwargs.get(d.name, {})) for d in appliances.values()]
        targets = [Target(name=d.name, root=root) for root, d in appliances.items()]
        return executor.run(run_id=f"run-{next(_run_ids)}", extravars=build_extravars(items),
                            targets=targets, domains=domains, check=check)

    return run
