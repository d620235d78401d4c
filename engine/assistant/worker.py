"""The support worker process: claims queued support requests and answers them.

Model calls happen here, never in an API request. It builds the same
``SupportService`` the API builds, with a ``ModelClient`` for ``OLLAMA_API_URL`` /
``OLLAMA_MODEL``, and runs its loop (claim due ids from Redis, process, and every
30 s re-queue from PostgreSQL whatever is due) until SIGINT or SIGTERM. Pull
requests it opens get their checks run as tasks of this process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TextIO

from redis.asyncio import Redis

from engine.assistant.model import ModelClient
from engine.assistant.service import SupportService
from engine.db.migrate import apply_migrations
from engine.db.pool import create_pool
from engine.pulls.service import PullRequests
from engine.reconcile.queue import ReconcileQueue
from engine.repos.reader import SnapshotReader
from engine.repos.store import RepoStore
from engine.settings import load_settings


async def _main(model_timeout: float, out: TextIO) -> None:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    pool = await create_pool(settings.database_url, min_size=1, max_size=4)
    redis = Redis.from_url(settings.redis_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await apply_migrations(pool)
        store, reader = RepoStore(settings.repos_dir), SnapshotReader()
        pulls = PullRequests(pool=pool, store=store, reader=reader, queue=ReconcileQueue(redis))
        model = ModelClient(host=settings.ollama_api_url, model=settings.ollama_model,
                            timeout=model_timeout)
        service = SupportService(pool=pool, redis=redis, store=store, reader=reader,
                                 pulls=pulls, model=model)
        print(f"support worker: model {settings.ollama_model} at {settings.ollama_api_url}",
              file=out, flush=True)
        await service.run(stop)
        await pulls.idle()
        await model.aclose()
    finally:
        await pool.close()
        await redis.aclose()


def run_worker(*, timeout: float, out: TextIO) -> int:
    asyncio.run(_main(timeout, out))
    return 0
