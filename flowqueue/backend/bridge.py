"""Run async-only operations (live subscriptions) for blocking callers.

A store's sync ``subscribe`` drives its async implementation on a private event loop in a
daemon thread, so the gap-free merge logic exists once and one Pub/Sub connection serves
every subscriber of the store, sync or async.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "flowqueue-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        """Blocking iteration over an async iterator that lives on this loop."""
        reading: list[asyncio.Task[T]] = []  # the read in flight, if any

        async def next_item() -> T:
            task = asyncio.current_task()
            assert task is not None
            reading[:] = [task]
            return await agen.__anext__()

        try:
            while True:
                try:
                    yield self.run(next_item())
                except StopAsyncIteration:
                    return
        finally:
            if not self.loop.is_closed():
                # Interrupted mid-read (Ctrl-C): end that read first, or aclose() finds
                # the generator still running.
                if reading and not reading[0].done():
                    self.run(_cancelled(reading[0]))
                aclose = getattr(agen, "aclose", None)
                if aclose is not None:
                    self.run(aclose())

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


async def _cancelled(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
