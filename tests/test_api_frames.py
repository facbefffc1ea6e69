"""SSE framing (the end of a stream: tests/test_sse_fanout.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from flowqueue.api.frames import FrameCache
from flowqueue.model.events import Event


def event(event_id: str, msg: str) -> Event:
    return Event(
        id=event_id,
        ts=datetime.now(UTC),
        kind="log",
        run_id="r1",
        flow="f",
        data={"msg": msg},
    )


def test_a_feed_position_equal_to_another_events_id_gets_its_own_frame():
    cache = FrameCache()
    lifecycle = event("100-2", "in the feed at 100-1")
    other = event("100-1", "a log line of the same run")
    feed_frame = cache.event_frame(lifecycle, "100-1")
    run_frame = cache.event_frame(other)
    assert b"in the feed" in feed_frame
    assert b"a log line" in run_frame
    assert run_frame.startswith(b"id: 100-1\n")
