"""`hearth appliance register --address` and `hearth appliance address`, as an operator types them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from engine.db import tenants
from tests.services import CLI_DB, redis_url

ROOT = Path(__file__).resolve().parents[2]


def _hearth(database_url: str, tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url(CLI_DB),
               OLLAMA_API_URL="http://127.0.0.1:9",
               SECRET_KEY="cli-secret-key-0123456789abcdefghijklmn",
               JWT_SECRET="cli-jwt-secret-0123456789abcdefghijklmn",
               ANSIBLE_VAULT_PASSWORD="vault-0123456789", REPOS_DIR=str(tmp_path),
               PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "engine.cli", *argv], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


async def test_cli_records_changes_and_refuses_addresses(pool: asyncpg.Pool, database_url: str,
                                                         tmp_path: Path) -> None:
    async with pool.acquire() as conn:
        await tenants.insert_tenant(conn, name="acme", display_name="Acme")
    made = _hearth(database_url, tmp_path, "appliance", "register", "acme", "box",
                   "--address", "10.20.0.9")
    assert made.returncode == 0, made.stderr
    bad = _hearth(database_url, tmp_path, "appliance", "address", "acme", "box", "-oX=y")
    assert bad.returncode == 2 and "address" in bad.stderr
    moved = _hearth(database_url, tmp_path, "appliance", "address", "acme", "box", "Box.Example")
    assert moved.returncode == 0, moved.stderr
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT address FROM appliances WHERE name = 'box'") \
            == "box.example"
        details = await conn.fetchval(
            "SELECT details FROM audit_events WHERE action = 'appliance.address.set'")
    assert details == {"old": "10.20.0.9", "new": "box.example"}
    cleared = _hearth(database_url, tmp_path, "appliance", "address", "acme", "box", "--clear")
    assert cleared.returncode == 0, cleared.stderr
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT address FROM appliances WHERE name = 'box'") is None
