"""The backfill/live merge read to the end: every event after the cursor exactly once,
in order, with live copies arriving before, during and after the backfill.

Each test reads until the last event it knows of and then waits a little longer, so a
duplicate that would come after the last event is seen too (stopping at the first copy
of the last event hides it). A deadline ends a read that misses an event (a gap).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from flowqueue.backend.live import LiveBuffer, merge_backfill_and_live
from flowqueue.backend.store import EventStore
from flowqueue.model.events import Event, NewEvent

from .helpers import ev

PAGE = 4
EXTRA_WAIT = 0.3  # long enough for a pushed copy to come out; nothing should
DEADLINE = 10.0  # only reached when an event is missing


def stored(i: int) -> Event:
    return Event.stamped(
        NewEvent(kind="log", run_id="r", flow="f", data={"i": i}), f"1700000000000-{i}"
    )


class FakeRun:
    """A run's log and one subscriber's live buffer; ``write`` appends and publishes
    as a store does. ``on_page`` runs before each backfill page is read."""

    def __init__(self, buffer: LiveBuffer[Event], count: int = 0) -> None:
        self.buffer = buffer
        self.log = [stored(i) for i in range(count)]
        self.pages_read = 0
        self.on_page: Callable[[int], None] = lambda page: None

    @classmethod
    def attached(cls, count: int = 0, size: int = 100) -> FakeRun:
        """A run of ``count`` events whose subscriber has just attached with a live buffer
        of ``size``: the stores ask for a backfill first."""
        run = cls(LiveBuffer(size, asyncio.get_running_loop()), count)
        run.buffer.request_resync()
        return run

    def subscribe(self, after: str | None = None) -> Reader:
        return Reader(merge_backfill_and_live(self.buffer, self.read_page, PAGE, after))

    def append(self, *numbers: int) -> None:
        self.log.extend(stored(i) for i in numbers)

    def publish(self, *numbers: int) -> None:
        for i in numbers:
            self.buffer.push(stored(i))

    def write(self, *numbers: int) -> None:
        self.append(*numbers)
        self.publish(*numbers)

    async def read_page(self, cursor: str | None) -> list[Event]:
        self.on_page(self.pages_read)
        self.pages_read += 1
        await asyncio.sleep(0)  # a real read yields to the loop: live copies can land
        start = 0 if cursor is None else int(cursor.split("-")[1]) + 1
        return self.log[start : start + PAGE]


class Reader:
    """Pulls a subscription in a task of its own into a queue, so a read can wait with a
    deadline without cancelling the subscription itself."""

    def __init__(self, stream: AsyncIterator[Event]) -> None:
        self.stream = stream
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self.task = asyncio.create_task(self._pull())

    async def _pull(self) -> None:
        async for event in self.stream:
            await self.queue.put(event.data["i"])

    async def take(self, n: int) -> list[int]:
        """The next ``n`` events' ``i`` (a missing event fails at the deadline)."""
        return [await asyncio.wait_for(self.queue.get(), DEADLINE) for _ in range(n)]

    async def to_end(self, last: int) -> list[int]:
        """Every event until ``last`` has come out, plus whatever follows within
        ``EXTRA_WAIT`` (a duplicate after the last event is seen too)."""
        got: list[int] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while last not in got and loop.time() < deadline:
            try:
                got.append(await asyncio.wait_for(self.queue.get(), deadline - loop.time()))
            except TimeoutError:
                break
        await asyncio.sleep(EXTRA_WAIT)
        while not self.queue.empty():
            got.append(self.queue.get_nowait())
        return got

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def run_async(scenario: Callable[[], Coroutine[Any, Any, list[int]]]) -> list[int]:
    return asyncio.run(scenario())


def test_live_copies_before_during_and_after_the_backfill_come_out_once():
    async def scenario() -> list[int]:
        run = FakeRun.attached(10)
        run.publish(6, 7, 8, 9)  # live copies of events the backfill will read too
        run.write(10, 11)  # appended after attaching, before the backfill reads them

        def during(page: int) -> None:
            if page == 1:  # between two backfill pages
                run.write(12, 13)

        run.on_page = during
        reader = run.subscribe("1700000000000-2")
        head = await reader.take(11)  # 3..13: the backfill
        run.write(14, 15, 16)  # after the boundary: live only
        run.write(17, 18, 19)
        got = head + await reader.to_end(19)
        await reader.close()
        return got

    assert run_async(scenario) == list(range(3, 20))


def test_live_copy_of_the_last_backfilled_event_is_skipped():
    # The boundary itself: the backfill ends on 7, whose live copy is still buffered.
    async def scenario() -> list[int]:
        run = FakeRun.attached(8)
        run.publish(7)
        reader = run.subscribe()
        got = await reader.take(8)
        run.write(8)
        got += await reader.to_end(8)
        await reader.close()
        return got

    assert run_async(scenario) == list(range(9))


def test_an_empty_log_then_live_events_arrive_once():
    async def scenario() -> list[int]:
        run = FakeRun.attached()
        reader = run.subscribe()
        await asyncio.sleep(0.05)  # the backfill found nothing; now waiting for live
        run.write(0, 1, 2)
        got = await reader.to_end(2)
        await reader.close()
        return got

    assert run_async(scenario) == [0, 1, 2]


def test_an_overflowing_buffer_falls_back_to_the_log_without_gap_or_duplicate():
    async def scenario() -> list[int]:
        run = FakeRun.attached(1, size=4)
        reader = run.subscribe()
        got = await reader.take(1)  # 0, then live
        run.write(*range(1, 50))  # the 5th push overflows: the backlog is dropped
        got += await reader.to_end(49)
        await reader.close()
        return got

    assert run_async(scenario) == list(range(50))


def test_a_resync_after_lost_live_messages_fills_the_gap_once():
    # The Pub/Sub connection dropped: 5..9 were appended but their live copies lost;
    # the reconnect asks for a resync, and 8..11 arrive live around it.
    async def scenario() -> list[int]:
        run = FakeRun.attached(5)
        reader = run.subscribe()
        got = await reader.take(5)
        run.append(5, 6, 7, 8, 9)
        run.buffer.request_resync()
        run.publish(8, 9)
        run.write(10, 11)
        got += await reader.to_end(11)
        await reader.close()
        return got

    assert run_async(scenario) == list(range(12))


def test_nothing_at_or_before_the_cursor_comes_out_even_with_nothing_to_backfill():
    # A client resumes after an id the log has not reached yet (another process's view,
    # a later page): live events up to that id are not "after" it.
    async def scenario() -> list[int]:
        run = FakeRun.attached(3)
        reader = run.subscribe("1700000000000-6")
        await asyncio.sleep(0.05)  # the backfill found nothing after 6
        run.write(*range(3, 10))
        got = await reader.to_end(9)
        await reader.close()
        return got

    assert run_async(scenario) == [7, 8, 9]


@pytest.mark.parametrize("cut", [None, 2])
def test_store_subscriber_with_appends_during_backfill_reads_each_event_once(
    make_store, cut: int | None
):
    # The Redis store end to end: events appended while the subscriber backfills, then after
    # it caught up (live only), read to the last one and a little longer.
    store: EventStore = make_store(read_page_size=PAGE)
    first = store.append_many([ev("log", "merge", i=i) for i in range(10)])
    after = None if cut is None else first[cut].id

    async def scenario() -> list[int]:
        aio = store.aio
        stream = aio.subscribe("merge", after=after)
        got = [(await asyncio.wait_for(anext(stream), DEADLINE)).data["i"]]
        # The subscriber is attached and mid-backfill: these land in the log pages it has
        # yet to read *and* in its live buffer.
        for i in range(10, 30):
            await aio.append(ev("log", "merge", i=i))
        reader = Reader(stream)
        got += await reader.to_end(29)
        for i in range(30, 35):  # caught up: one by one, then a batch, live only
            await aio.append(ev("log", "merge", i=i))
        await aio.append_many([ev("log", "merge", i=i) for i in range(35, 40)])
        got += await reader.to_end(39)
        await reader.close()
        await aio.aclose()
        return got

    start = 0 if cut is None else cut + 1
    assert run_async(scenario) == list(range(start, 40))
