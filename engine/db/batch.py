"""Group concurrent single-item calls into one database round trip.

``MicroBatcher.submit(item)`` returns when the batch holding ``item`` has been
flushed, with that item's own result (or exception). Batches form naturally:
while one flush is in flight, newly submitted items queue up and go together
in the next one, so a lightly loaded server answers at once and a busy one
writes hundreds of rows per statement. ``linger`` adds a short wait before
each flush to let a batch fill; ``max_in_flight`` bounds concurrent flushes
(each holds a pool connection).

A flush returns one result per item in order; an item's result may be an
exception instance, which ``submit`` raises for that caller only. If the
flush itself raises, every caller of that batch gets the exception: nothing
of the batch is reported durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    def __init__(
        self, flush: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]], *,
        max_size: int = 500, linger: float = 0.002, max_in_flight: int = 2,
    ) -> None:
        self._flush = flush
        self._max_size = max_size
        self._linger = linger
        self._slots = asyncio.Semaphore(max_in_flight)
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._wakeup = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Flush what is queued, then stop."""
        self._closed = True
        self._wakeup.set()
        if self._runner is not None:
            await self._runner
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def submit(self, item: T) -> R:
        if self._closed:
            raise RuntimeError("batcher is closed")
        self.start()
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._wakeup.set()
        return await future

    async def _run(self) -> None:
        while True:
            if not self._pending:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._slots.acquire()
            if self._linger and len(self._pending) < self._max_size:
                await asyncio.sleep(self._linger)
            batch, self._pending = (self._pending[: self._max_size],
                                    self._pending[self._max_size:])
            task = asyncio.get_running_loop().create_task(self._deliver(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            try:
                results = await self._flush([item for item, _ in batch])
            except Exception as exc:  # every caller of the batch learns of it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                return
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        finally:
            self._slots.release()
