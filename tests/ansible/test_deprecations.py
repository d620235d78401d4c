"""Deprecation warnings are on (ansible.cfg) and a run prints none.

ansible-core and the collections announce removals a release or two ahead as
``[DEPRECATION WARNING]`` lines on the run's output; with them on, Hearth sees
what would break at the next upgrade while the old behaviour still works. These
runs cover every playbook path of a converge: site.yml from scratch on a new
root (users, the tenant CA, leaf keys, every domain's files, Samba accounts),
again with nothing to change, and a dry run; ansible-runner's stdout of each
holds Ansible's warnings (the pty merges stderr into it).
"""

from __future__ import annotations

import configparser

import pytest

from engine.execution.ansible import RunResult
from engine.execution.workspace import ANSIBLE_DIR
from schemas.config import DesiredAppliance

from .desired import appliance_data

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NAME = "deprecations-1"


def _stdout(result: RunResult) -> str:
    assert result.artifacts_dir is not None
    return (result.artifacts_dir / "stdout").read_text()


def test_ansible_cfg_turns_deprecation_warnings_on() -> None:
    cfg = configparser.ConfigParser()
    cfg.read(ANSIBLE_DIR / "ansible.cfg")
    assert cfg.get("defaults", "deprecation_warnings") == "True"


def test_a_converge_prints_no_deprecation_warning(clone, converge) -> None:
    (root,) = clone([NAME], hostnames={NAME: f"{NAME}.example.test"})
    desired = {root: DesiredAppliance.model_validate(appliance_data(NAME))}
    for kwargs in ({}, {}, {"check": True}):  # from scratch, nothing to change, dry run
        result = converge(desired, **kwargs, **{NAME: {"revision": "r1"}})
        assert result.succeeded, result.events
        stdout = _stdout(result)
        assert "PLAY RECAP" in stdout  # the stdout read is the run's
        assert [line for line in stdout.splitlines() if "DEPRECATION" in line] == []
