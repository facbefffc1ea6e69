"""The bounded live buffer and the backfill/live merge, without any store."""

from __future__ import annotations

import asyncio

from flowqueue.backend.live import LiveBuffer, merge_backfill_and_live
from flowqueue.model.events import Event, NewEvent


def stored(i: int) -> Event:
    return Event.stamped(
        NewEvent(kind="log", run_id="r", flow="f", data={"i": i}), f"1700000000000-{i}"
    )


def test_overflow_drops_backlog_and_asks_for_resync():
    async def scenario() -> None:
        buffer = LiveBuffer(3, asyncio.get_running_loop())
        for i in range(3):
            buffer.push(stored(i))
        assert await buffer.take() == (False, [stored(0), stored(1), stored(2)])
        for i in range(5):  # the 4th push overflows: backlog dropped, resync requested
            buffer.push(stored(i))
        resync, items = await buffer.take()
        assert resync is True
        assert [e.data["i"] for e in items] == [4]  # pushed after the overflow

    asyncio.run(scenario())


def test_merge_skips_live_events_already_backfilled():
    log = [stored(i) for i in range(10)]

    async def read_page(cursor: str | None) -> list[Event]:
        start = 0 if cursor is None else int(cursor.split("-")[1]) + 1
        return log[start : start + 4]

    async def scenario() -> list[int]:
        buffer = LiveBuffer(100, asyncio.get_running_loop())
        buffer.request_resync()
        for i in range(6, 12):  # live copies of 6..9 overlap the backfill
            buffer.push(stored(i))
        log.extend([stored(10), stored(11)])
        got = []
        async for event in merge_backfill_and_live(buffer, read_page, 4, "1700000000000-2"):
            got.append(event.data["i"])
            if event.data["i"] == 11:
                break
        return got

    assert asyncio.run(scenario()) == list(range(3, 12))


def test_push_from_another_thread_wakes_the_loop():
    async def scenario() -> list[Event]:
        buffer = LiveBuffer(10, asyncio.get_running_loop())
        await asyncio.to_thread(buffer.push, stored(1))
        _, items = await asyncio.wait_for(buffer.take(), timeout=5)
        return items

    assert asyncio.run(scenario()) == [stored(1)]
