"""Throwaway PostgreSQL databases for tests: created with a random name, dropped at the end."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")
SERVER = os.environ.get("HEARTH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync or async code alike (in its own thread)."""
    with ThreadPoolExecutor(1) as executor:
        return executor.submit(asyncio.run, coro).result()


def _admin(sql: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(SERVER)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run_sync(run())


class Databases:
    """Makes empty databases on the test server and drops them all in ``drop_all``."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def create(self) -> str:
        name = "hearth_t_" + secrets.token_hex(6)
        _admin(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        return SERVER.rsplit("/", 1)[0] + "/" + name

    def drop_all(self) -> None:
        for name in self.made:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
