"""The suite next to a running Hearth: its Redis database 0 survives ``make test``.

Runs a slice of the suite (API tests, which flush their Redis database before
each test, and the queue tests) in a subprocess pointed at a Redis server of
this test's own, with a key in database 0 standing for a demo's queue; the key
must survive.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import redis

from tests.services import private_redis, redis_url

ROOT = Path(__file__).resolve().parents[1]


def test_make_test_leaves_database_zero_alone() -> None:
    with private_redis() as url:
        server = url.rsplit("/", 1)[0]
        demo = redis.Redis.from_url(url)
        demo.set("hearth:demo:queue-entry", "brightsmile/front-office")
        env = dict(os.environ, HEARTH_TEST_REDIS=server, PYTHONPATH=str(ROOT))
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/api/test_auth.py", "tests/reconcile/test_queue.py"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
        assert demo.get("hearth:demo:queue-entry") == b"brightsmile/front-office"
        used = redis.Redis.from_url(url).info("commandstats")
        assert used.get("cmdstat_flushdb", {}).get("calls", 0) > 0  # the slice did flush its own
        assert "cmdstat_flushall" not in used
        demo.close()


def test_test_databases_are_never_zero() -> None:
    import pytest

    assert redis_url(9).endswith("/9")
    for db in (0, 16, -1):
        with pytest.raises(ValueError, match="never"):
            redis_url(db)
