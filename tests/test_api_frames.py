"""SSE framing and the end of a stream, without a server (ASGI called directly)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

from flowqueue import create_app
from flowqueue.api.context import ApiContext
from flowqueue.api.frames import FrameCache
from flowqueue.api.sse import EventStream
from flowqueue.model.events import Event
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.settings import Settings


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


def run_stream(source: AsyncGenerator[bytes, None]) -> list[dict[str, Any]]:
    app = create_app(Settings(redis_url="memory://", workers="tests.flows"))
    ctx = ApiContext.open(flowqueue_of(app))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(EventStream(source, ctx)({}, receive, send), 10))
    flowqueue_of(app).close()
    return sent


def test_a_stream_whose_source_ends_completes_the_response():
    async def source() -> AsyncGenerator[bytes, None]:
        yield b"id: 1-0\ndata: {}\n\n"

    sent = run_stream(source())
    assert b"id: 1-0" in b"".join(m.get("body", b"") for m in sent)
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


def test_a_stream_whose_source_fails_sends_one_problem_frame_and_ends():
    async def source() -> AsyncGenerator[bytes, None]:
        yield b"id: 1-0\ndata: {}\n\n"
        raise ConnectionError("Redis gone for good")

    sent = run_stream(source())
    body = b"".join(m.get("body", b"") for m in sent)
    assert body.count(b"event: problem\n") == 1
    assert b"unreachable" in body
    assert b"retry: 5000\n" in body
    assert body.index(b"id: 1-0") < body.index(b"event: problem")
    # Ended cleanly (the client waits its retry, not a cut-and-retry-at-once loop).
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
