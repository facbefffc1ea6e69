"""One Redis Pub/Sub connection per store, shared by all its live subscribers.

Each message is decoded once into a ``LiveBatch`` and handed to every subscriber (a
``LiveSink``) of its channel in one pass, with no task or queue per subscriber: an SSE
client writes it straight to its socket, a ``subscribe`` iterator buffers it.

Every ``subscribe`` confirmation from Redis (the first one, and the ones redis-py sends
again after a reconnect) asks the channel's subscribers to resync from the log, so a
dropped connection can delay live events but never lose them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from flowqueue.backend.live import LiveBatch, LiveSink
from flowqueue.backend.store import FeedEntry
from flowqueue.model.events import decode_event
from flowqueue.model.ids import is_stream_id

log = logging.getLogger(__name__)
_LOST = (RedisConnectionError, RedisTimeoutError, OSError)
T = TypeVar("T")
Decoder = Callable[[bytes], Any]


def decode_run_line(line: bytes) -> Any:
    """A run channel line: ``<event id> <body>``; None if it has no event id."""
    event_id, _, body = line.partition(b" ")
    text = event_id.decode(errors="replace")
    return decode_event(text, body, "a run's live channel") if is_stream_id(text) else None


def decode_feed_line(line: bytes) -> Any:
    """A feed channel line: ``<feed id> <event id> <body>``; None if it has no ids."""
    feed_id, _, rest = line.partition(b" ")
    position = feed_id.decode(errors="replace")
    event = decode_run_line(rest)
    if event is None or not is_stream_id(position):
        return None
    return FeedEntry(id=position, event=event)


async def retry_while_unreachable(call: Callable[[], Awaitable[T]], timeout: float) -> T:
    """Retry ``call`` on connection errors (Redis restarting) for up to ``timeout`` s."""
    deadline, backoff = time.monotonic() + timeout, 0.05
    while True:
        try:
            return await call()
        except _LOST:
            if time.monotonic() + backoff > deadline:
                raise
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)


class RedisLiveHub:
    def __init__(self, client: aioredis.Redis) -> None:
        self._pubsub = client.pubsub()
        self._subscribers: dict[bytes, set[LiveSink[Any]]] = {}
        self._decoders: dict[bytes, Decoder] = {}
        self._confirmed: set[bytes] = set()
        self._lock = asyncio.Lock()  # serialises SUBSCRIBE/UNSUBSCRIBE decisions
        self._reader: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def attach(
        self, channel: str, buffer: LiveSink[Any], decode: Decoder = decode_run_line
    ) -> AsyncIterator[None]:
        """Hand ``buffer`` every message of ``channel`` while the context lasts."""
        key = channel.encode()
        async with self._lock:
            subscribers = self._subscribers.get(key)
            if subscribers is None:
                self._subscribers[key] = {buffer}
                self._decoders[key] = decode
                try:
                    await self._pubsub.subscribe(key)  # its confirmation triggers the resync
                except BaseException:
                    del self._subscribers[key]
                    del self._decoders[key]
                    raise
                self._start_reader()
            else:
                subscribers.add(buffer)
                if key in self._confirmed:
                    buffer.on_resync()
        try:
            yield
        finally:
            await self._detach(key, buffer)

    async def _detach(self, key: bytes, buffer: LiveSink[Any]) -> None:
        async with self._lock:
            subscribers = self._subscribers.get(key)
            if subscribers is None:
                return
            subscribers.discard(buffer)
            if not subscribers:
                del self._subscribers[key]
                del self._decoders[key]
                self._confirmed.discard(key)
                with contextlib.suppress(*_LOST):
                    await self._pubsub.unsubscribe(key)

    def _start_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read_forever(), name="flowqueue-live-hub")

    async def _read_forever(self) -> None:
        backoff = 0.05
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except _LOST as exc:
                # redis-py re-subscribes when it reconnects; those confirmations resync.
                self._confirmed.clear()
                log.warning("live Pub/Sub connection lost (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                continue
            backoff = 0.05
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, object]) -> None:
        kind, channel, data = message["type"], message["channel"], message["data"]
        assert isinstance(channel, bytes)
        subscribers = self._subscribers.get(channel)
        if kind == "message" and subscribers:
            assert isinstance(data, bytes)
            decode = self._decoders[channel]
            items = []
            for line in data.split(b"\n"):  # one line per event of the appended batch
                item = decode(line)  # decoded once, shared by every subscriber
                if item is None:  # not ours (something else published here): the log
                    log.warning("ignoring a malformed live message on %r", channel)
                    continue  # is the truth, and a resync would read it
                items.append(item)
            if items:
                batch = LiveBatch(items)
                for sink in subscribers:
                    try:  # one subscriber's bug must not stop the others' events
                        sink.on_batch(batch)
                    except Exception:
                        log.exception("a live subscriber failed")
        elif kind == "subscribe" and subscribers is not None:
            self._confirmed.add(channel)
            for sink in subscribers:
                sink.on_resync()

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, *_LOST):
                await self._reader
        with contextlib.suppress(*_LOST):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
