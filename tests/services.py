"""Where the tests find Redis, and the rules that keep them from hurting anything.

``HEARTH_TEST_REDIS`` names a Redis *server* (``redis://host:port``; a database
number in it is ignored). Each test area uses its own numbered database on it,
never database 0 (where a Hearth running next to the tests keeps its queue), and
only ever ``FLUSHDB`` on its own number. A scenario that needs ``FLUSHALL``
runs against a Redis server the test starts itself on a free port
(``private_redis``). PostgreSQL is the same: tests create and drop databases
of their own (``tests.db.pg.Databases``) and never touch ``hearth``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

_SERVER = urlsplit(os.environ.get("HEARTH_TEST_REDIS", "redis://127.0.0.1:6379"))
REDIS_SERVER = f"{_SERVER.scheme}://{_SERVER.netloc}"

API_DB = 9
CLI_DB = 10
RECONCILE_DB = 11
COMMANDS_DB = 12
"""Databases of the test areas on the shared test server (never 0)."""


def redis_url(db: int) -> str:
    """The URL of test database ``db`` on the test server."""
    if not 1 <= db <= 15:
        raise ValueError(f"tests use Redis databases 1-15, never {db}")
    return f"{REDIS_SERVER}/{db}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def private_redis() -> Iterator[str]:
    """A Redis server of the caller's own on a free loopback port; its URL (database 0)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (scripts/lib.sh installs it)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="hearth-redis-")
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
