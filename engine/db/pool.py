"""The asyncpg pool, with JSON and JSONB decoded to Python values on every connection.

``create_pool`` is the only way Hearth opens PostgreSQL connections, so every
connection sees ``jsonb`` columns as dicts and lists and never as strings.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


async def init_connection(conn: asyncpg.Connection) -> None:
    """Set the JSON codecs on one connection (also usable with ``asyncpg.connect``)."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=_dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, **kwargs: Any) -> asyncpg.Pool:
    """An asyncpg pool whose connections decode JSON/JSONB; ``kwargs`` go to asyncpg."""
    kwargs.setdefault("min_size", 1)
    kwargs.setdefault("max_size", 10)
    kwargs.setdefault("command_timeout", 30)
    user_init = kwargs.pop("init", None)

    async def _init(conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        if user_init is not None:
            await user_init(conn)

    pool = await asyncpg.create_pool(dsn, init=_init, **kwargs)
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection with the codecs set, for the CLI and scripts."""
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    return conn
