"""Server-sent events with bounded memory per client.

Between the store subscription and the socket each client has a queue of at most
``sse_client_buffer`` frames; when it is full the subscription waits (backfill pauses,
and live events collect in the subscription's own bounded buffer, which past its limit
drops them and re-reads the log later: nothing is lost, memory does not grow). A client
that accepts no data for ``sse_send_timeout_seconds`` (uvicorn stops ``send`` when the
socket's buffers are full) is disconnected; it reconnects with ``Last-Event-ID`` and the
stream resumes exactly after it. Idle streams send a comment line every
``sse_heartbeat_seconds`` so proxies keep them open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

from redis.exceptions import RedisError
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from flowqueue.api.context import ApiContext
from flowqueue.api.frames import HEARTBEAT, error_frame

log = logging.getLogger(__name__)
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx: do not buffer the stream
]
RECONNECT_MS = b"retry: 1000\n\n"  # EventSource waits this long before reconnecting
MAX_BATCH = 256  # frames written in one send when a client is catching up


class EventStream(Response):
    """A response that streams the frames of ``source`` until it ends, the client
    leaves, or the client falls behind."""

    def __init__(self, source: AsyncGenerator[bytes, None], ctx: ApiContext) -> None:
        super().__init__(status_code=200, media_type="text/event-stream")
        self._source = source
        self._ctx = ctx
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(ctx.settings.sse_client_buffer)
        self._ended = False  # the source is exhausted, or failed and said so in a frame

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self._ctx.metrics
        metrics.sse_clients += 1
        producer = asyncio.create_task(self._produce())
        leaving = asyncio.create_task(_wait_disconnect(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            writer = asyncio.create_task(self._write(send))
            done, _ = await asyncio.wait({writer, leaving}, return_when=asyncio.FIRST_COMPLETED)
            if writer in done and writer.result():  # the stream ended normally
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                writer.cancel()
        finally:
            metrics.sse_clients -= 1
            for task in (producer, leaving):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer

    async def _produce(self) -> None:
        try:
            async for item in self._source:
                await self._queue.put(item)  # a full queue pauses the subscription
        except Exception as exc:
            # One problem frame, then a clean end: never a cut body that the client
            # retries at once, over and over. It reconnects after the frame's retry.
            if isinstance(exc, RedisError | OSError):
                log.warning("SSE source failed: %s: %s", type(exc).__name__, exc)
            else:
                log.exception("SSE source failed")
            await self._queue.put(error_frame(exc))
        finally:
            self._ended = True
            with contextlib.suppress(Exception):
                await self._source.aclose()  # detaches from the store's live hub
            if not self._queue.full():
                self._queue.put_nowait(b"")  # wakes the writer to see the end

    async def _write(self, send: Send) -> bool:
        """Write frames until the source ends (True) or the client must go (False)."""
        if not await self._send(send, RECONNECT_MS):
            return False
        while True:
            try:
                async with asyncio.timeout(self._ctx.settings.sse_heartbeat_seconds):
                    first = await self._queue.get()
            except TimeoutError:
                if not await self._send(send, HEARTBEAT):
                    return False
                continue
            batch = [first]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            chunk = b"".join(batch)
            if chunk and not await self._send(send, chunk):
                return False
            self._ctx.metrics.sse_events_sent += sum(1 for frame in batch if frame)
            if self._queue.empty() and self._ended:
                return True

    async def _send(self, send: Send, data: bytes) -> bool:
        timeout = self._ctx.settings.sse_send_timeout_seconds
        message: dict[str, Any] = {"type": "http.response.body", "body": data, "more_body": True}
        try:
            async with asyncio.timeout(timeout):  # no task per send, unlike wait_for
                await send(message)
        except TimeoutError:
            self._ctx.metrics.sse_disconnected_slow += 1
            log.info("disconnecting an SSE client that read nothing for %s s", timeout)
            return False
        except OSError:
            return False
        return True


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
