"""Live delivery shared by every store: what a live message is (``LiveBatch``), who
receives it (``LiveSink``), a bounded per-subscriber buffer and the backfill-then-live
merge that makes ``subscribe`` gap-free and duplicate-free.

The protocol: a subscriber's buffer is registered with the live source *before* the
log is read. Whenever the buffer cannot vouch for continuity (just attached, overflowed,
or the Pub/Sub connection was re-established) it is marked for *resync*: the subscriber
re-reads the log after the last id it yielded, then continues with buffered live events,
skipping any id it has already passed. Live events arrive in append order, so "id greater
than the last one yielded" is the whole de-duplication rule.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from flowqueue.model.ids import StreamId, parse_stream_id


class HasId(Protocol):
    @property
    def id(self) -> str: ...


T = TypeVar("T", bound=HasId)
T_co = TypeVar("T_co", bound=HasId, covariant=True)
E = TypeVar("E")
PageReader = Callable[[str | None], Awaitable[list[T]]]


class LiveBatch(Generic[T]):
    """The items of one live message (one append), decoded once and shared by every
    subscriber of the channel; ``encoded`` caches what they encode to, once per encoder,
    so a thousand clients of one run cost one encoding."""

    __slots__ = ("_encoded", "first", "items", "last")

    def __init__(self, items: list[T]) -> None:
        self.items = items
        self.first = parse_stream_id(items[0].id)
        self.last = parse_stream_id(items[-1].id)
        self._encoded: dict[Hashable, Any] = {}

    def encoded(self, key: Hashable, encode: Callable[[list[T]], E]) -> E:
        """``encode(items)``, computed by the first subscriber that asks with ``key``."""
        try:
            value: E = self._encoded[key]
        except KeyError:
            value = self._encoded[key] = encode(self.items)
        return value


class LiveSink(Protocol[T_co]):
    """One subscriber of a live channel. Both calls run on the hub's event loop, once per
    message: they must not block (no I/O wait), and must not fail."""

    def on_batch(self, batch: LiveBatch[Any]) -> None:
        """The items of one message, in append order."""

    def on_resync(self) -> None:
        """Live messages may have been lost (just subscribed, or reconnected): read the
        log after the last item taken before trusting live items again."""


@dataclass(frozen=True)
class LiveSource(Generic[T]):
    """What a follower of one channel needs: ``attach`` a sink for as long as the context
    lasts (the first ``on_resync`` comes once the subscription is confirmed), and
    ``read_page`` the log after a cursor, ``page_size`` items at most."""

    attach: Callable[[LiveSink[T]], AbstractAsyncContextManager[None]]
    read_page: PageReader[T]
    page_size: int


class LiveBuffer(Generic[T]):
    """Items (events, feed entries) pushed live to one subscriber; bounded, safe to push
    from any thread."""

    __slots__ = ("_items", "_lock", "_loop", "_maxlen", "_resync", "_wake")

    def __init__(self, maxlen: int, loop: asyncio.AbstractEventLoop) -> None:
        self._items: deque[T] = deque()
        self._maxlen = maxlen
        self._resync = False
        self._lock = threading.Lock()
        self._loop = loop
        self._wake = asyncio.Event()

    def push(self, event: T) -> None:
        with self._lock:
            self._add(event)
        self._notify()

    def on_batch(self, batch: LiveBatch[Any]) -> None:
        with self._lock:
            for item in batch.items:
                self._add(item)
        self._notify()

    def on_resync(self) -> None:
        self.request_resync()

    def _add(self, event: T) -> None:
        if len(self._items) >= self._maxlen:
            # Too far behind: drop the backlog, re-read the log instead.
            self._items.clear()
            self._resync = True
        else:
            self._items.append(event)

    def request_resync(self) -> None:
        with self._lock:
            # Everything buffered is in the log too; the re-read will cover it.
            self._items.clear()
            self._resync = True
        self._notify()

    async def take(self) -> tuple[bool, list[T]]:
        """Wait for something, then return (resync needed, buffered events)."""
        while True:
            with self._lock:
                if self._resync or self._items:
                    resync, items = self._resync, list(self._items)
                    self._resync = False
                    self._items.clear()
                    self._wake.clear()
                    return resync, items
            await self._wake.wait()

    def _notify(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)


async def merge_backfill_and_live(
    buffer: LiveBuffer[T], read_page: PageReader[T], page_size: int, after: str | None
) -> AsyncIterator[T]:
    """Yield every event after ``after`` exactly once, in order (see module docstring)."""
    cursor: StreamId | None = parse_stream_id(after) if after else None
    cursor_text = after
    while True:
        resync, live = await buffer.take()
        if resync:
            while True:
                page = await read_page(cursor_text)
                for event in page:
                    yield event
                if page:
                    cursor_text = page[-1].id
                    cursor = parse_stream_id(cursor_text)
                if len(page) < page_size:
                    break
        for event in live:
            sid = parse_stream_id(event.id)
            if cursor is None or sid > cursor:
                yield event
                cursor, cursor_text = sid, event.id
