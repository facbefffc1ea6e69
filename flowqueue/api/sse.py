"""Server-sent events with bounded memory per client.

A followed run or feed is a ``LiveStream``. The store's live hub hands each Pub/Sub
message to every client of its channel in one pass; the message is encoded into SSE
frames once (``FrameEncoder``), and a client that is caught up gets those bytes written
straight to its socket's transport, as one HTTP chunk (``flowqueue api`` puts the
transport in the ASGI scope; under another server the client's own task sends them). No
queue and no task per client per event.

A client is caught up once it has read the log after its cursor (``Last-Event-ID``); live
messages arriving meanwhile wait in a list of at most ``sse_client_buffer`` events (past
it, they are dropped and the log is read again: nothing is lost, memory does not grow).
A caught-up client whose transport would hold more than ``LIVE_BUFFER_BYTES`` its socket
has not taken falls behind: live writes to it stop, and it catches up from the log
through ASGI ``send``, which waits for the socket to drain. A client that accepts no data
for ``sse_send_timeout_seconds`` is disconnected; it reconnects with ``Last-Event-ID`` and
the stream resumes exactly after it. Idle streams send a comment line every
``sse_heartbeat_seconds`` so proxies keep them open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Generic, TypeVar

from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from flowqueue.api.context import ApiContext
from flowqueue.api.frames import HEARTBEAT, FrameEncoder, Frames, error_frame
from flowqueue.backend.live import HasId, LiveBatch, LiveSource
from flowqueue.backend.redis.store import AsyncRedisEventStore
from flowqueue.model.cloudevents import Format
from flowqueue.model.ids import StreamId, parse_stream_id

log = logging.getLogger(__name__)
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
]
RECONNECT_MS = b"retry: 1000\n\n"  # EventSource waits this long before reconnecting
# The key under which ``flowqueue api``'s HTTP protocol puts a request's transport.
TRANSPORT_KEY = "flowqueue.transport"
# At most this much written live to a client and still in its transport, beyond what its
# socket took (a client further behind catches up from the log instead): about as much as
# a queue of ``sse_client_buffer`` events of usual size held before.
LIVE_BUFFER_BYTES = 256 * 1024
T = TypeVar("T", bound=HasId)


async def send_frames(ctx: ApiContext, send: Send, data: bytes, more: bool = True) -> bool:
    """Send ``data`` as a body part; False if the client read nothing for the send
    timeout (it is counted as disconnected slow) or went away."""
    timeout = ctx.settings.sse_send_timeout_seconds
    message: dict[str, Any] = {"type": "http.response.body", "body": data, "more_body": more}
    try:
        async with asyncio.timeout(timeout):  # no task per send, unlike wait_for
            await send(message)
    except TimeoutError:
        ctx.metrics.sse_disconnected_slow += 1
        log.info("disconnecting an SSE client that read nothing for %s s", timeout)
        return False
    except OSError:
        return False
    return True


def report_failure(exc: Exception) -> bytes:
    """Log why a stream's source failed; the problem frame that tells its client."""
    # One problem frame, then a clean end: never a cut body that the client retries at
    # once, over and over. It reconnects after the frame's retry.
    if isinstance(exc, RedisError | OSError):
        log.warning("SSE source failed: %s: %s", type(exc).__name__, exc)
    else:
        log.exception("SSE source failed", exc_info=exc)
    return error_frame(exc)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def run_stream(
    ctx: ApiContext,
    run_id: str,
    after: str | None,
    keep_open: bool,
    event_format: Format = "flowqueue",
) -> Response:
    """A run's events after ``after``, each in format ``event_format``: its log, then live; it
    ends after the run's terminal event unless ``keep_open``."""
    source = _redis_store(ctx).live_run(run_id)
    return LiveStream(ctx, source, ctx.frames.run_encoder(keep_open, event_format), after)


def feed_stream(ctx: ApiContext, after: str | None, event_format: Format = "flowqueue") -> Response:
    """The feed after position ``after``, each event in format ``event_format``: its capped log,
    then live."""
    return LiveStream(
        ctx, _redis_store(ctx).live_feed(), ctx.frames.feed_encoder(event_format), after
    )


def _redis_store(ctx: ApiContext) -> AsyncRedisEventStore:
    store = ctx.store
    if not isinstance(store, AsyncRedisEventStore):
        raise TypeError(f"live streams need the Redis event store, not {type(store).__name__}")
    return store


class LiveStream(Response, Generic[T]):
    """One SSE client following a live source (see the module docstring). The hub calls
    ``on_batch`` / ``on_resync``; the client's own task catches up from the log, sends
    heartbeats and ends the response."""

    def __init__(
        self, ctx: ApiContext, source: LiveSource[T], encoder: FrameEncoder[T], after: str | None
    ) -> None:
        super().__init__(status_code=200, media_type="text/event-stream")
        self._ctx = ctx
        self._source = source
        self._encoder = encoder
        self._limit = ctx.settings.sse_client_buffer
        self._cursor: StreamId | None = parse_stream_id(after) if after else None
        self._cursor_text = after  # the id of the last event sent (what Last-Event-ID says)
        self._transport: asyncio.Transport | None = None
        self._live = False  # the hub writes to the transport itself
        self._resync = False  # read the log after the cursor before trusting live events
        self._pending: list[LiveBatch[T]] = []  # live messages taken while not live
        self._pending_count = 0
        self._last_write = 0.0
        self._ended = False  # the stream's last event is sent
        self._gone = False  # the client left
        self._wake = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self._ctx.metrics
        metrics.sse_clients += 1
        leaving = asyncio.create_task(_wait_disconnect(receive))
        leaving.add_done_callback(lambda _: self._leave())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            if not await send_frames(self._ctx, send, RECONNECT_MS):
                return
            self._transport = _transport_of(scope)
            try:
                async with self._source.attach(self):
                    ended = await self._serve(send)
            except Exception as exc:
                self._live = False
                ended = not self._gone and await self._send(send, report_failure(exc))
            if ended:
                await send_frames(self._ctx, send, b"", more=False)
            elif not self._gone and self._transport is not None:
                self._transport.abort()  # cut: drop what it never read now, not when TCP gives up
        finally:
            self._live = False
            metrics.sse_clients -= 1
            leaving.cancel()

    def on_batch(self, batch: LiveBatch[T]) -> None:
        if self._live:
            self._write_live(batch)
        elif not (self._ended or self._gone):
            if self._pending_count + len(batch.items) > self._limit:
                self._pending.clear()  # too far behind: the log has them
                self._pending_count = 0
                self._resync = True
            else:
                self._pending.append(batch)
                self._pending_count += len(batch.items)
            self._wake.set()

    def on_resync(self) -> None:
        self._live = False
        self._pending.clear()  # the re-read covers them
        self._pending_count = 0
        self._resync = True
        self._wake.set()

    async def _serve(self, send: Send) -> bool:
        """Until the stream ends (True) or the client goes (False)."""
        loop = asyncio.get_running_loop()
        heartbeat = self._ctx.settings.sse_heartbeat_seconds
        self._last_write = loop.time()
        while True:
            self._wake.clear()
            if self._gone:
                return False
            if self._ended:
                return True
            if self._resync:
                if not await self._catch_up(send):
                    return False
            elif self._pending:  # not writing live (another server): send them here
                if not await self._send_pending(send):
                    return False
            elif loop.time() - self._last_write >= heartbeat:
                if not await self._send(send, HEARTBEAT):
                    return False
                self._last_write = loop.time()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout_at(self._last_write + heartbeat):
                        await self._wake.wait()

    async def _catch_up(self, send: Send) -> bool:
        """Send the log after the cursor, then the live events taken meanwhile; from
        then on, live events are written as they come (no gap: on one event loop, nothing
        runs between the last read and going live)."""
        self._live = False
        while True:
            self._resync = False  # set again if live events are lost during the read
            full = await self._send_page(send)
            if full is None:
                return False
            if self._ended or not (full or self._resync):
                break
            # Let others have the loop (and a Redis connection): a send the socket takes at
            # once does not yield, and many clients catching up would starve new requests.
            await asyncio.sleep(0)
        if self._transport is not None and not (self._gone or self._ended):
            # (An ended stream sends nothing more: the live messages taken while it read
            # its end may hold what followed the end.)
            batches, self._pending, self._pending_count = self._pending, [], 0
            self._live = True
            for batch in batches:
                self.on_batch(batch)  # what falls behind again goes back to pending
        return True

    async def _send_pending(self, send: Send) -> bool:
        batches, self._pending, self._pending_count = self._pending, [], 0
        for batch in batches:
            if self._resync or self._ended:
                return True  # the log re-read covers the rest
            frames, last = self._frames_after_cursor(batch)
            if frames is not None and not await self._send_frames(send, frames, last):
                return False
        return True

    async def _send_page(self, send: Send) -> bool | None:
        """Send the next page of the log: whether it was full (more may follow), or None
        if the client went or was cut."""
        page = await self._source.read_page(self._cursor_text)
        if self._gone:
            return None
        full = len(page) >= self._source.page_size
        if page:
            frames = self._encoder.encode(page)
            last = page[frames.count - 1].id
            del page  # only its frames wait for a slow socket, not its events
            if not await self._send_frames(send, frames, last):
                return None
        return full

    async def _send_frames(self, send: Send, frames: Frames, last_id: str) -> bool:
        if not await self._send(send, frames.data):
            return False
        self._advance(last_id, None, frames)
        return True

    def _write_live(self, batch: LiveBatch[T]) -> None:
        frames, last = self._frames_after_cursor(batch)
        if frames is None:
            return
        transport = self._transport
        assert transport is not None
        if transport.is_closing():
            self._leave()
            return
        if transport.get_write_buffer_size() + len(frames.data) > LIVE_BUFFER_BYTES:
            # Behind: its task waits for the socket to drain (or cuts it), and sends
            # from the log after the cursor.
            self._live = False
            self._resync = True
            self._wake.set()
            return
        transport.write(frames.chunk)
        # The same item as the batch's last (no copy of the id): its id is parsed already.
        self._advance(last, batch.last if last is batch.items[-1].id else None, frames)

    def _frames_after_cursor(self, batch: LiveBatch[T]) -> tuple[Frames | None, str]:
        """The batch's frames after the cursor (shared by every client whose cursor is
        before it, so encoded once), and the id of the last one."""
        items = batch.items
        cursor = self._cursor
        if cursor is None or batch.first > cursor:
            frames = batch.encoded(self._encoder, self._encoder.encode)
        else:  # a client resumed ahead of this message (rare): its own frames
            items = [item for item in items if parse_stream_id(item.id) > cursor]
            if not items:
                return None, ""
            frames = self._encoder.encode(items)
        return frames, items[frames.count - 1].id

    def _advance(self, last_id: str, parsed: StreamId | None, frames: Frames) -> None:
        self._cursor_text = last_id
        self._cursor = parsed or parse_stream_id(last_id)
        self._last_write = asyncio.get_running_loop().time()
        self._ctx.metrics.sse_events_sent += frames.count
        if frames.ends:
            self._ended = True
            self._live = False
            self._wake.set()

    def _leave(self) -> None:
        self._gone = True
        self._live = False
        self._wake.set()

    async def _send(self, send: Send, data: bytes) -> bool:
        return await send_frames(self._ctx, send, data)


def _transport_of(scope: Scope) -> asyncio.Transport | None:
    """The transport to write live frames to: set by ``flowqueue api``'s protocol, whose
    responses without a length are chunked (HEAD responses have no body)."""
    transport = scope.get(TRANSPORT_KEY)
    if isinstance(transport, asyncio.Transport) and scope.get("method") == "GET":
        return transport
    return None
