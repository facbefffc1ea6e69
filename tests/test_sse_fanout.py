"""The SSE fan-out (``LiveStream``) without a server: a hand-made live source (a log and
the sinks attached to it, as the Redis hub drives them) and a wire that stands for one
connection, where uvicorn's transport writes and ASGI ``send`` both land, as HTTP chunks.

Every client gets every event after its cursor exactly once and in order, across the
backfill-then-live handover, a fall behind and its catch-up; live events are encoded
once for all clients; a client that reads nothing is cut.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from flowqueue import create_app
from flowqueue.api.context import ApiContext
from flowqueue.api.frames import FrameEncoder
from flowqueue.api.sse import TRANSPORT_KEY, LiveStream
from flowqueue.backend.live import LiveBatch, LiveSink, LiveSource
from flowqueue.model.events import TERMINAL_KINDS, Event, NewEvent
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.settings import Settings

PAGE = 4
DEADLINE = 10.0  # only reached when something is missing


def stored(i: int, kind: str = "log") -> Event:
    new = NewEvent(kind=kind, run_id="r", flow="f", data={"i": i} if kind == "log" else {})
    return Event.stamped(new, f"1700000000000-{i}")


class Source:
    """A run's log and its live channel: ``write`` appends and publishes, as a store does;
    ``on_page`` runs before each page is read, ``after_read`` once it is read and before the
    reader sees it (what is written then is in the live channel only)."""

    def __init__(self, count: int) -> None:
        self.log = [stored(i) for i in range(count)]
        self.sinks: set[LiveSink[Event]] = set()
        self.on_page: Callable[[], None] = lambda: None
        self.after_read: Callable[[], None] = lambda: None
        self.fail: Exception | None = None

    def live(self) -> LiveSource[Event]:
        return LiveSource(self.attach, self.read_page, PAGE)

    @contextlib.asynccontextmanager
    async def attach(self, sink: LiveSink[Event]) -> AsyncIterator[None]:
        self.sinks.add(sink)
        sink.on_resync()  # the subscription is confirmed
        try:
            yield
        finally:
            self.sinks.discard(sink)

    async def read_page(self, cursor: str | None) -> list[Event]:
        self.on_page()
        await asyncio.sleep(0)  # a real read yields: live messages can land meanwhile
        if self.fail is not None:
            raise self.fail
        start = 0 if cursor is None else int(cursor.split("-")[1]) + 1
        page = self.log[start : start + PAGE]
        self.after_read()
        return page

    def write(self, *events: Event) -> None:
        self.log.extend(events)
        batch = LiveBatch(list(events))
        for sink in list(self.sinks):
            sink.on_batch(batch)


class Wire(asyncio.Transport):
    """One connection: what the server wrote to it, and what it reports as unread."""

    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.unread = 0  # get_write_buffer_size: bytes the client has not taken
        self.stuck = asyncio.Event()  # cleared: sends wait (the client reads nothing)
        self.stuck.set()
        self.aborted = False

    def write(self, data: Any) -> None:
        self.out += data

    def get_write_buffer_size(self) -> int:
        return self.unread

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] != "http.response.body":
            return
        await self.stuck.wait()
        body = message["body"]
        if body:
            self.write(b"%x\r\n%b\r\n" % (len(body), body))
        if not message["more_body"]:
            self.write(b"0\r\n\r\n")

    def body(self) -> bytes:
        out, data = bytes(self.out), b""
        while out:
            size, _, out = out.partition(b"\r\n")
            data, out = data + out[: int(size, 16)], out[int(size, 16) + 2 :]
        return data

    def ids(self) -> list[int]:
        frames = self.body().split(b"\n\n")
        return [int(f.split(b"\n")[0].split(b"-")[1]) for f in frames if f.startswith(b"id: ")]

    def ended(self) -> bool:
        return self.out.endswith(b"0\r\n\r\n")


class Client:
    """A LiveStream served on a wire (``direct``: live frames go straight to it)."""

    def __init__(
        self, ctx: ApiContext, source: Source, encoder: FrameEncoder[Event], after: int | None
    ) -> None:
        self.wire = Wire()
        self.leave = asyncio.Event()
        cursor = None if after is None else f"1700000000000-{after}"
        self.stream = LiveStream(ctx, source.live(), encoder, cursor)
        self.task: asyncio.Task[None] | None = None

    def start(self, direct: bool) -> None:
        scope = {"type": "http", "method": "GET"} | ({TRANSPORT_KEY: self.wire} if direct else {})

        async def receive() -> dict[str, Any]:
            await self.leave.wait()
            return {"type": "http.disconnect"}

        self.task = asyncio.create_task(self.stream(scope, receive, self.wire.send))

    async def until(self, last: int) -> None:
        async with asyncio.timeout(DEADLINE):
            while last not in self.wire.ids():
                await asyncio.sleep(0.001)

    async def end(self) -> None:
        assert self.task is not None
        await asyncio.wait_for(self.task, DEADLINE)


async def settle() -> None:
    """Let every task run until it waits for something outside the loop: a client whose
    last event is on the wire may still be reading its next (empty) page. One event loop,
    no I/O: a fixed number of turns is enough, and always the same."""
    for _ in range(20):
        await asyncio.sleep(0)


def run(scenario: Callable[[ApiContext], Coroutine[Any, Any, None]], **settings: Any) -> None:
    app = create_app(Settings(redis_url="memory://", workers="tests.flows", **settings))
    ctx = ApiContext.open(flowqueue_of(app))
    try:
        asyncio.run(scenario(ctx))
    finally:
        flowqueue_of(app).close()


def counting(ctx: ApiContext, encoded: Counter[str]) -> FrameEncoder[Event]:
    """The run encoder, counting how often each event is encoded."""

    def frame(event: Event) -> bytes:
        encoded[event.id] += 1
        return ctx.frames.event_frame(event)

    return FrameEncoder(frame, lambda event: event.kind in TERMINAL_KINDS)


@pytest.mark.parametrize("direct", [True, False], ids=["transport", "asgi-send"])
def test_every_client_gets_each_event_once_across_the_handover(direct: bool):
    async def scenario(ctx: ApiContext) -> None:
        source = Source(10)
        encoded: Counter[str] = Counter()
        encoder = counting(ctx, encoded)
        first, second = Client(ctx, source, encoder, None), Client(ctx, source, encoder, 3)
        pages = 0

        def during_backfill() -> None:  # appended while the clients read the log
            nonlocal pages
            pages += 1
            if pages == 2:
                source.write(stored(10), stored(11))

        source.on_page = during_backfill
        first.start(direct)
        second.start(direct)
        await first.until(11)
        await second.until(11)
        await settle()  # both have read the log to its end: what follows is live
        live = [stored(i) for i in range(12, 18)]
        source.write(live[0])
        source.write(live[1])
        source.write(*live[2:])  # one message of four events
        source.write(stored(18, "flow.completed"), stored(19))  # the stream ends at 18
        await first.end()
        await second.end()
        assert first.wire.ids() == list(range(19))
        assert second.wire.ids() == list(range(4, 19))
        assert first.wire.ended()
        assert second.wire.ended()
        # Live events are encoded once for both clients.
        assert [encoded[f"1700000000000-{i}"] for i in range(12, 19)] == [1] * 7
        assert not source.sinks
        assert ctx.metrics.sse_clients == 0

    run(scenario)


def test_a_stream_that_reads_its_end_while_catching_up_sends_nothing_after_it():
    async def scenario(ctx: ApiContext) -> None:
        source = Source(6)
        client = Client(ctx, source, ctx.frames.run_encoder(False), None)

        def end_during_the_read() -> None:  # in the log and in the live channel at once
            if len(source.log) == 6:
                source.write(stored(6, "flow.completed"), stored(7))

        source.after_read = end_during_the_read
        client.start(direct=True)
        await client.end()
        assert client.wire.ids() == list(range(7))
        assert client.wire.ended()

    run(scenario)


def test_a_client_behind_catches_up_from_the_log_then_goes_live_again():
    async def scenario(ctx: ApiContext) -> None:
        source = Source(2)
        client = Client(ctx, source, ctx.frames.run_encoder(False), None)
        client.start(direct=True)
        await client.until(1)
        client.wire.unread = 10**9  # its socket holds more than LIVE_BUFFER_BYTES
        source.write(*(stored(i) for i in range(2, 12)))  # not written live: read from the log
        await client.until(11)
        client.wire.unread = 0
        source.write(stored(12))
        source.write(stored(13, "flow.completed"))
        await client.end()
        assert client.wire.ids() == list(range(14))
        assert ctx.metrics.sse_disconnected_slow == 0

    run(scenario)


def test_a_client_that_reads_nothing_is_cut_and_its_buffer_dropped():
    async def scenario(ctx: ApiContext) -> None:
        source = Source(2)
        client = Client(ctx, source, ctx.frames.run_encoder(False), None)
        client.start(direct=True)
        await client.until(1)
        client.wire.unread = 10**9
        client.wire.stuck.clear()  # from now on, sends wait for a reader that never comes
        source.write(*(stored(i) for i in range(2, 12)))
        await client.end()  # cut after the send timeout
        assert ctx.metrics.sse_disconnected_slow == 1
        assert client.wire.aborted
        assert not source.sinks

    run(scenario, sse_send_timeout_seconds=0.2)


def test_more_live_events_than_the_buffer_during_the_backfill_are_read_from_the_log():
    async def scenario(ctx: ApiContext) -> None:
        source = Source(6)
        client = Client(ctx, source, ctx.frames.run_encoder(False), None)
        pages = 0

        def after_the_last_page() -> None:
            nonlocal pages
            pages += 1
            if pages == 2:  # past sse_client_buffer (3): dropped, so the log is read again
                for i in range(6, 16):
                    source.write(stored(i))

        source.after_read = after_the_last_page
        client.start(direct=True)
        await client.until(15)
        source.write(stored(16, "flow.completed"))
        await client.end()
        assert client.wire.ids() == list(range(17))

    run(scenario, sse_client_buffer=3)


def test_a_failing_source_sends_one_problem_frame_and_ends():
    async def scenario(ctx: ApiContext) -> None:
        source = Source(2)
        source.fail = ConnectionError("Redis gone for good")
        client = Client(ctx, source, ctx.frames.run_encoder(False), None)
        client.start(direct=True)
        await client.end()
        body = client.wire.body()
        assert body.count(b"event: problem\n") == 1
        assert b"unreachable" in body
        assert client.wire.ended()  # a clean end: the client waits the frame's retry

    run(scenario)


def test_a_client_that_leaves_is_detached():
    async def scenario(ctx: ApiContext) -> None:
        source = Source(2)
        client = Client(ctx, source, ctx.frames.run_encoder(True), None)
        client.start(direct=True)
        await client.until(1)
        client.leave.set()
        await client.end()
        source.write(stored(2))  # nobody left to write it to
        assert not source.sinks
        assert ctx.metrics.sse_clients == 0
        assert client.wire.ids() == [0, 1]

    run(scenario)
