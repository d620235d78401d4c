"""The make targets, run for real with stand-ins for kubectl and docker."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def make(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def recorder(tmp_path: Path, name: str, exit_code: int = 0) -> tuple[Path, Path]:
    """A stand-in command that appends its arguments to a log and exits."""
    log = tmp_path / f"{name}.log"
    script = tmp_path / name
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexit {exit_code}\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


@pytest.mark.parametrize(
    ("target", "command"),
    [
        ("run", "bash scripts/run.sh"),
        ("test", "bash scripts/test.sh"),
        ("backend-up", "docker compose up -d --build"),
        ("backend-down", "docker compose down"),
    ],
)
def test_targets_run_their_commands(target, command):
    result = make("-n", target)
    assert result.returncode == 0, result.stderr
    assert command in result.stdout.splitlines()


@pytest.mark.parametrize("env", ["", "gcp", "aws proxmox", "base", "../base"])
def test_deploy_backend_rejects_other_environments(tmp_path, env):
    kubectl, log = recorder(tmp_path, "kubectl")
    result = make("deploy-backend", f"ENV={env}", f"KUBECTL={kubectl}")
    assert result.returncode != 0
    assert "ENV must be one of" in result.stderr
    assert not log.exists(), "kubectl ran for a rejected ENV"


@pytest.mark.parametrize("env", ["proxmox", "aws"])
def test_deploy_backend_applies_the_overlay(tmp_path, env):
    kubectl, log = recorder(tmp_path, "kubectl")
    result = make("deploy-backend", f"ENV={env}", f"KUBECTL={kubectl}")
    assert result.returncode == 0, result.stderr
    calls = log.read_text().splitlines()
    assert f"apply -k k8s/overlays/{env}" in calls
    assert calls.index("-n hearth get secret hearth-secrets") < calls.index(
        f"apply -k k8s/overlays/{env}"
    )


def test_deploy_backend_stops_without_the_secret(tmp_path):
    kubectl, log = recorder(tmp_path, "kubectl", exit_code=1)
    result = make("deploy-backend", "ENV=aws", f"KUBECTL={kubectl}")
    assert result.returncode != 0
    assert "hearth-secrets is missing" in result.stderr
    assert not any("apply" in call for call in log.read_text().splitlines())


def test_k8s_render_writes_every_target(tmp_path):
    result = make("k8s-render", f"RENDER_DIR={tmp_path}")
    assert result.returncode == 0, result.stderr
    for name in ("base", "proxmox", "aws"):
        assert "kind: Deployment" in (tmp_path / f"{name}.yaml").read_text()
