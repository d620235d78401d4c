"""``hearth tenant create``: row and repo together, or neither."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pygit2
import pytest

from engine.db.migrate import apply_migrations
from tests.services import COMMANDS_DB, redis_url

SERVER = os.environ.get("HEARTH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(SERVER)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _count(dsn: str, name: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT count(*) FROM tenants WHERE name = $1", name)
    finally:
        await conn.close()


@pytest.fixture
def hearth_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    name = "hearth_tc_" + secrets.token_hex(5)
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    dsn = SERVER.rsplit("/", 1)[0] + "/" + name
    asyncio.run(apply_migrations(dsn))
    env = dict(os.environ,
               DATABASE_URL=dsn, REDIS_URL=redis_url(COMMANDS_DB),
               OLLAMA_API_URL="http://127.0.0.1:11434", SECRET_KEY="s" * 32,
               JWT_SECRET="j" * 32, ANSIBLE_VAULT_PASSWORD="v" * 20,
               REPOS_DIR=str(tmp_path / "repos"), HEARTH_DATA_DIR=str(tmp_path / "data"))
    yield env
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _hearth(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_create_from_example_makes_row_and_first_commit(hearth_env, example_repo_dir) -> None:
    result = _hearth(hearth_env, "tenant", "create", "brightsmile")
    assert result.returncode == 0, result.stderr
    repo = pygit2.Repository(str(Path(hearth_env["REPOS_DIR"]) / "brightsmile.git"))
    assert repo.is_bare
    head = repo[repo.references["refs/heads/main"].target]
    assert head.parents == []
    assert head.tree["tenant.yaml"].data == (example_repo_dir / "tenant.yaml").read_bytes()
    assert "appliances" in head.tree
    assert asyncio.run(_count(hearth_env["DATABASE_URL"], "brightsmile")) == 1

    again = _hearth(hearth_env, "tenant", "create", "brightsmile")
    assert again.returncode == 1
    assert "already" in again.stderr


def test_invalid_source_creates_nothing(hearth_env, tmp_path: Path, example_repo_dir) -> None:
    import shutil

    source = tmp_path / "src"
    shutil.copytree(example_repo_dir, source)
    (source / "groups.yaml").write_text("kind: Groups\nspec: [\n")
    result = _hearth(hearth_env, "tenant", "create", "broken", "--from", str(source))
    assert result.returncode == 1
    assert "groups.yaml:" in result.stderr
    assert not (Path(hearth_env["REPOS_DIR"]) / "broken.git").exists()
    assert asyncio.run(_count(hearth_env["DATABASE_URL"], "broken")) == 0


def test_bad_tenant_name_is_refused(hearth_env) -> None:
    result = _hearth(hearth_env, "tenant", "create", "Bad_Name")
    assert result.returncode == 1
    assert "lower-case" in result.stderr


def test_missing_settings_are_all_listed(hearth_env) -> None:
    env = {k: v for k, v in hearth_env.items() if k not in ("DATABASE_URL", "JWT_SECRET")}
    env["REDIS_URL"] = "http://nope"
    result = _hearth(env, "tenant", "create", "x")
    assert result.returncode == 2
    for words in ("DATABASE_URL is not set", "JWT_SECRET is not set", "REDIS_URL must look like"):
        assert words in result.stderr
