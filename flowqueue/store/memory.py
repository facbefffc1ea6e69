"""An in-process event store with the Redis store's semantics.

For single-process use, tests of user code and local development. It passes the same
conformance suite as ``RedisEventStore``: same id scheme, same atomic batches, same run
bookkeeping, same gap-free subscriptions. All state sits behind one lock.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TypeVar

from flowqueue.events import (
    AWAIT_END_KINDS,
    AWAIT_KINDS,
    LIFECYCLE_KINDS,
    RUN_STATUS_BY_KIND,
    Event,
    EventKind,
    NewEvent,
)
from flowqueue.ids import StreamId, format_stream_id, parse_stream_id
from flowqueue.settings import Settings
from flowqueue.store.base import FeedEntry, FlowStats, RunSummary, duration_bucket
from flowqueue.store.bridge import LoopThread
from flowqueue.store.checks import check_cursor, check_limit, encode_batch, unknown_cursor_run
from flowqueue.store.live import HasId, LiveBuffer, merge_backfill_and_live

T = TypeVar("T", bound=HasId)


@dataclass
class _Run:
    events: list[Event] = field(default_factory=list)
    sids: list[StreamId] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    awaiting: int = 0  # steps awaiting while the run has not ended
    subscribers: set[LiveBuffer[Event]] = field(default_factory=set)


class MemoryEventStore:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}
        self._index: dict[str, list[str]] = {}  # flow -> sorted "<ms13>:<run>"
        self._stats: dict[str, dict[str, int]] = {}  # flow -> counters, as run_lib.lua
        self.feed: deque[FeedEntry] = deque(maxlen=self.settings.feed_maxlen)
        self._feed_sids: deque[StreamId] = deque(maxlen=self.settings.feed_maxlen)
        self._feed_subscribers: set[LiveBuffer[FeedEntry]] = set()
        self._aio = AsyncMemoryEventStore(self)
        self._bridge: LoopThread | None = None

    # -- writes -----------------------------------------------------------------------

    def append(self, event: NewEvent) -> Event:
        return self.append_many((event,))[0]

    def append_many(self, events: Sequence[NewEvent]) -> list[Event]:
        # The same checks as the Redis store, so both reject exactly the same input.
        if not encode_batch(events, self.settings.max_payload_bytes):
            return []
        with self._lock:
            run = self._runs.setdefault(events[0].run_id, _Run())
            last = run.sids[-1] if run.sids else (0, 0)
            stored = []
            for new in events:
                last = _next_id(last)
                event = Event.stamped(new, format_stream_id(last))
                run.sids.append(last)
                run.events.append(event)
                self._bookkeep(run, event)
                if event.kind in LIFECYCLE_KINDS:
                    self._feed(event)
                for buffer in run.subscribers:
                    buffer.push(event)
                stored.append(event)
        return stored

    def _feed(self, event: Event) -> None:
        last = self._feed_sids[-1] if self._feed_sids else (0, 0)
        sid = _next_id(last)
        entry = FeedEntry(id=format_stream_id(sid), event=event)
        self._feed_sids.append(sid)
        self.feed.append(entry)
        for buffer in self._feed_subscribers:
            buffer.push(entry)

    def _bookkeep(self, run: _Run, event: Event) -> None:
        """Run status, flow index and flow counters: the rules of run_lib.lua."""
        stats = self._stats.setdefault(event.flow, {})
        stats["events"] = stats.get("events", 0) + 1
        if event.kind in (EventKind.STEP_COMPLETED, EventKind.STEP_FAILED):
            ms = event.data.get("duration_ms")
            if isinstance(ms, int | float) and not isinstance(ms, bool):
                field = f"step_ms_le_{duration_bucket(ms)}"
                stats[field] = stats.get(field, 0) + 1
                stats["step_ms_sum"] = stats.get("step_ms_sum", 0) + int(ms)
        if event.kind in AWAIT_KINDS or event.kind in AWAIT_END_KINDS:
            if "ended_ms" not in run.meta:
                delta = 1 if event.kind in AWAIT_KINDS else -1
                run.awaiting += delta
                stats["awaiting"] = stats.get("awaiting", 0) + delta
            return
        status = RUN_STATUS_BY_KIND.get(event.kind)
        if status is None:
            return
        prev = run.meta.get("status")
        if prev != status:
            if prev is not None:
                stats[prev] = stats.get(prev, 0) - 1
            stats[status] = stats.get(status, 0) + 1
        if status != "running":  # the run's awaits end with it
            stats["awaiting"] = stats.get("awaiting", 0) - run.awaiting
            run.awaiting = 0
        ms = event.id.partition("-")[0]
        if status == "running":
            if "started_ms" not in run.meta:
                run.meta["started_ms"] = ms
                bisect.insort(
                    self._index.setdefault(event.flow, []), f"{int(ms):013d}:{event.run_id}"
                )
        else:
            run.meta["ended_ms"] = ms
        run.meta["flow"] = event.flow
        run.meta["status"] = status

    # -- reads ------------------------------------------------------------------------

    def read(self, run_id: str, after: str | None = None, limit: int | None = None) -> list[Event]:
        check_cursor("after", after)
        check_limit(limit)
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return []
            start = bisect.bisect_right(run.sids, parse_stream_id(after)) if after else 0
            end = len(run.events) if limit is None else start + limit
            return run.events[start:end]

    def read_reverse(
        self, run_id: str, before: str | None = None, limit: int | None = None
    ) -> list[Event]:
        check_cursor("before", before)
        check_limit(limit)
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return []
            end = bisect.bisect_left(run.sids, parse_stream_id(before)) if before else len(run.sids)
            start = 0 if limit is None else max(0, end - limit)
            return run.events[start:end][::-1]

    def count(self, run_id: str) -> int:
        with self._lock:
            run = self._runs.get(run_id)
            return 0 if run is None else len(run.events)

    def list_runs(self, flow: str, limit: int = 50, before: str | None = None) -> list[RunSummary]:
        check_limit(limit)
        with self._lock:
            members = self._index.get(flow, [])
            end = len(members)
            if before:
                run = self._runs.get(before)
                started = run.meta.get("started_ms") if run else None
                if started is None:
                    raise unknown_cursor_run(before)
                end = bisect.bisect_left(members, f"{int(started):013d}:{before}")
            page = members[max(0, end - limit) : end][::-1]
            out = []
            for member in page:
                run_id = member[14:]
                meta = self._runs[run_id].meta
                out.append(
                    RunSummary.from_fields(
                        run_id,
                        meta.get("flow", ""),
                        meta.get("status", ""),
                        meta.get("started_ms", ""),
                        meta.get("ended_ms", ""),
                    )
                )
            return out

    def read_feed(self, after: str | None = None, limit: int | None = None) -> list[FeedEntry]:
        check_cursor("after", after)
        check_limit(limit)
        with self._lock:
            sids = list(self._feed_sids)
            start = bisect.bisect_right(sids, parse_stream_id(after)) if after else 0
            end = len(sids) if limit is None else start + limit
            return list(self.feed)[start:end]

    def flow_stats(self, flow: str) -> FlowStats:
        with self._lock:
            return FlowStats.from_counters(self._stats.get(flow, {}))

    # -- live -------------------------------------------------------------------------

    def subscribe(self, run_id: str, after: str | None = None) -> Iterator[Event]:
        check_cursor("after", after)
        if self._bridge is None:
            self._bridge = LoopThread("flowqueue-memory-subscribe")
        return self._bridge.iterate(self._aio.subscribe(run_id, after))

    @contextlib.contextmanager
    def _attach_feed(self) -> Iterator[LiveBuffer[FeedEntry]]:
        buffer: LiveBuffer[FeedEntry] = LiveBuffer(
            self.settings.subscriber_buffer, asyncio.get_running_loop()
        )
        with self._lock:
            self._feed_subscribers.add(buffer)
            buffer.request_resync()
        try:
            yield buffer
        finally:
            with self._lock:
                self._feed_subscribers.discard(buffer)

    @contextlib.contextmanager
    def _attach(self, run_id: str) -> Iterator[LiveBuffer[Event]]:
        buffer: LiveBuffer[Event] = LiveBuffer(
            self.settings.subscriber_buffer, asyncio.get_running_loop()
        )
        with self._lock:
            self._runs.setdefault(run_id, _Run()).subscribers.add(buffer)
            # Registered under the append lock: from here on nothing can be missed.
            buffer.request_resync()
        try:
            yield buffer
        finally:
            with self._lock:
                self._runs[run_id].subscribers.discard(buffer)

    @property
    def aio(self) -> AsyncMemoryEventStore:
        return self._aio

    def close(self) -> None:
        if self._bridge is not None:
            self._bridge.stop()
            self._bridge = None


class AsyncMemoryEventStore:
    """The async face of a ``MemoryEventStore`` (same data; operations never block long)."""

    def __init__(self, store: MemoryEventStore) -> None:
        self._store = store

    async def append(self, event: NewEvent) -> Event:
        return self._store.append(event)

    async def append_many(self, events: Sequence[NewEvent]) -> list[Event]:
        return self._store.append_many(events)

    async def read(
        self, run_id: str, after: str | None = None, limit: int | None = None
    ) -> list[Event]:
        return self._store.read(run_id, after, limit)

    async def read_reverse(
        self, run_id: str, before: str | None = None, limit: int | None = None
    ) -> list[Event]:
        return self._store.read_reverse(run_id, before, limit)

    async def count(self, run_id: str) -> int:
        return self._store.count(run_id)

    async def list_runs(
        self, flow: str, limit: int = 50, before: str | None = None
    ) -> list[RunSummary]:
        return self._store.list_runs(flow, limit, before)

    def subscribe(self, run_id: str, after: str | None = None) -> AsyncGenerator[Event, None]:
        check_cursor("after", after)

        def read(cursor: str | None, limit: int) -> list[Event]:
            return self._store.read(run_id, cursor, limit)

        return self._follow(self._store._attach(run_id), read, after)

    async def _follow(
        self,
        attached: AbstractContextManager[LiveBuffer[T]],
        read: Callable[[str | None, int], list[T]],
        after: str | None,
    ) -> AsyncGenerator[T, None]:
        """Backfill with ``read``, then live from the attached buffer."""
        page_size = self._store.settings.read_page_size

        async def read_page(cursor: str | None) -> list[T]:
            return read(cursor, page_size)

        with attached as buffer:
            async for item in merge_backfill_and_live(buffer, read_page, page_size, after):
                yield item

    async def read_feed(
        self, after: str | None = None, limit: int | None = None
    ) -> list[FeedEntry]:
        return self._store.read_feed(after, limit)

    async def flow_stats(self, flow: str) -> FlowStats:
        return self._store.flow_stats(flow)

    def subscribe_feed(self, after: str | None = None) -> AsyncGenerator[FeedEntry, None]:
        check_cursor("after", after)
        return self._follow(self._store._attach_feed(), self._store.read_feed, after)

    async def aclose(self) -> None:
        return None


def _next_id(last: StreamId) -> StreamId:
    """Redis's rule: the current ms, or the last id's ms with the next sequence number."""
    now = time.time_ns() // 1_000_000
    return (now, 0) if now > last[0] else (last[0], last[1] + 1)
