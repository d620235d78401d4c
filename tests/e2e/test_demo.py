"""The README's run command: ``hearth demo`` brings the example tenant to Synced and Healthy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine.appliances.sim import remove_roots
from tests.db.pg import Databases
from tests.services import COMMANDS_DB, redis_url

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_demo_converges_every_appliance(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("the demo needs root (chroot into appliance roots)")
    databases = Databases()
    dsn = databases.create()
    data = tmp_path / "data"
    data.mkdir()
    # Share the machine's image cache instead of building the image again.
    (data / "images").symlink_to(Path(os.environ.get("HEARTH_IMAGE_CACHE", "/var/lib/hearth/images")))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, DATABASE_URL=dsn, REDIS_URL=redis_url(COMMANDS_DB),
               HEARTH_DATA_DIR=str(data), REPOS_DIR=str(tmp_path / "repos"))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "engine.cli", "demo", "--exit-when-converged",
             "--port", str(port), "--heartbeat-interval", "3"],
            env=env, capture_output=True, text=True, timeout=900, check=False)
    finally:
        remove_roots(data / "appliances" / "brightsmile")
        databases.drop_all()
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "all 3 appliances converged" in result.stdout
    assert (data / "demo.env").stat().st_mode & 0o777 == 0o600
