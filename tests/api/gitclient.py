"""A real HTTP server running the app (the stock ``git`` client needs one) and git helpers."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import asyncpg
import uvicorn

from api.app import create_app
from engine.db import tokens as token_db
from engine.settings import Settings
from tests.services import free_port


@contextmanager
def http_server(settings: Settings) -> Iterator[str]:
    """The app under uvicorn on a free loopback port, in a thread; its base URL."""
    port = free_port()
    config = uvicorn.Config(create_app(settings, migrate=False, pool_size=4), host="127.0.0.1",
                            port=port, log_level="warning", lifespan="on", http="httptools")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


async def make_token(settings: Settings, person_id: int, *, scope: str = "write",
                     expires_at: datetime | None = None) -> str:
    conn = await asyncpg.connect(settings.database_url)
    try:
        _, token = await token_db.create_token(conn, person_id=person_id, name="test",
                                               scope=scope, expires_at=expires_at,
                                               secret_key=settings.secret_key)  # type: ignore[arg-type]
    finally:
        await conn.close()
    return token


def authed(base: str, token: str, tenant: str = "acme") -> str:
    scheme, rest = base.split("://", 1)
    return f"{scheme}://person:{token}@{rest}/git/{tenant}.git"


def git(*args: str, cwd: Path | None = None, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
    """The stock git client, with no credential helper or user config in the way."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_AUTHOR_NAME": "Olga Operator",
           "GIT_AUTHOR_EMAIL": "olga@example.org", "GIT_COMMITTER_NAME": "Olga Operator",
           "GIT_COMMITTER_EMAIL": "olga@example.org"}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
