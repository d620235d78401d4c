"""Streaming a run's events out while it goes: buffered, written in batches.

ansible-runner calls ``on_event`` from its own thread for every event; the
stream numbers them and keeps them until ``flush`` hands a batch to ``write``
(the caller's storage, e.g. ``run_events`` rows). ``running`` flushes every
``interval`` seconds while the run goes and once more at the end, so readers
(the API's server-sent events) see progress without a write per event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

Event = tuple[int, str | None, str, dict[str, Any]]
"""``(sequence, host, event name, summary)``."""


class EventStream:
    def __init__(self, write: Callable[[list[Event]], Awaitable[None]], *,
                 interval: float = 0.5) -> None:
        self._write = write
        self._interval = interval
        self._pending: list[Event] = []
        self._seq = 0

    def on_event(self, summary: dict[str, Any]) -> None:
        """ansible-runner's event callback (any thread): buffer one summarised event."""
        self._pending.append((self._seq, summary.get("host"), summary["event"], summary))
        self._seq += 1

    async def flush(self) -> None:
        if not self._pending:
            return
        batch = self._pending[:]
        del self._pending[:len(batch)]
        await self._write(batch)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[EventStream]:
        """Flush periodically inside the block and once more when it ends."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(self._interval)
                await self.flush()

        task = asyncio.create_task(loop())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.flush()
