"""The README's two commands' set-up (scripts/lib.sh), run by bash as `make` runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bash(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", f"source {ROOT}/scripts/lib.sh; {script}"],
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.parametrize(("url", "port", "local"), [
    ("postgresql://postgres@127.0.0.1:5432/hearth", "5432", True),
    ("postgresql://postgres@localhost/hearth", "5432", True),
    ("postgresql://hearth:pw@db.example.org:5432/hearth", "5432", False),
    ("postgresql://postgres@127.0.0.1:5433/hearth", "5432", False),
    ("redis://127.0.0.1:6379/0", "6379", True),
    ("redis://10.0.0.5:6379/0", "6379", False),
], ids=["loopback", "localhost-default-port", "remote", "other-port", "redis-local",
        "redis-remote"])
def test_only_loopback_services_on_their_port_count_as_local(url: str, port: str,
                                                             local: bool) -> None:
    result = _bash(f"is_local_service '{url}' {port}")
    assert (result.returncode == 0) is local, result.stderr


def test_remote_services_are_neither_started_nor_created() -> None:
    result = _bash("ensure_services postgresql://h:pw@db.example.org:5432/hearth "
                   "redis://cache.example.org:6379/0")
    assert result.returncode == 0, result.stderr
    assert "PostgreSQL at db.example.org: not starting or creating anything" in result.stderr
    assert "Redis at cache.example.org: not starting anything" in result.stderr


def test_the_database_created_is_the_one_the_url_names() -> None:
    assert _bash("url_part postgresql://postgres@127.0.0.1:5432/hearth_demo path").stdout \
        == "hearth_demo\n"


def test_the_wrapper_runs_the_venv_and_never_replaces_a_stranger(tmp_path: Path) -> None:
    target = tmp_path / "hearth"
    venv = str(Path(sys.executable).parent.parent)  # the venv running this suite
    made = _bash("install_wrapper", HEARTH_WRAPPER=str(target), HEARTH_VENV=venv)
    assert made.returncode == 0, made.stderr
    if os.geteuid() != 0:
        pytest.fail("run the suite as root (the wrapper goes to /usr/local/bin)")
    version = subprocess.run([str(target), "--help"], capture_output=True, text=True,
                             timeout=60, check=False)
    assert version.returncode == 0 and "validate" in version.stdout
    stranger = tmp_path / "other"
    stranger.write_text("#!/bin/sh\necho someone else\n")
    kept = _bash("install_wrapper", HEARTH_WRAPPER=str(stranger), HEARTH_VENV=venv)
    assert "is not Hearth's wrapper" in kept.stderr
    assert stranger.read_text() == "#!/bin/sh\necho someone else\n"
