"""SSE frames: one event per frame, its id as the SSE ``id:`` (so ``Last-Event-ID``
resumes after it), its JSON as ``data:``. No ``event:`` field, so a browser's
``EventSource.onmessage`` sees every event.

A live event goes to every client following its run: it is encoded once per live message
(``FrameEncoder`` is the key a ``LiveBatch`` caches it under) and the cache keeps recent
frames for the clients reading the log (backfill, catching up).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Generic, TypeVar

from redis.exceptions import RedisError

from flowqueue.api.problems import Problem
from flowqueue.backend.store import FeedEntry
from flowqueue.errors import FlowqueueError
from flowqueue.model.cloudevents import Format, encode_cloudevent
from flowqueue.model.events import TERMINAL_KINDS, Event

T = TypeVar("T")

HEARTBEAT = b": heartbeat\n\n"
ERROR_RETRY_MS = 5_000  # after an error frame, the browser waits this long to reconnect


def error_frame(exc: BaseException) -> bytes:
    """An ``event: problem`` frame (RFC 9457 body) saying why the stream ends; it has no
    id, so ``Last-Event-ID`` still points at the last event delivered."""
    if isinstance(exc, FlowqueueError):
        detail = str(exc)
    elif isinstance(exc, RedisError | OSError):
        detail = f"the event store is unreachable ({type(exc).__name__}); try again later."
    else:
        detail = f"the stream failed ({type(exc).__name__}); the server log has the details."
    body = Problem(title="Stream ended", status=503, detail=detail).encoded()
    return b"retry: %d\nevent: problem\ndata: %s\n\n" % (ERROR_RETRY_MS, body)


class FrameCache:
    """The frames of recently sent events, by (format, SSE id, run, event id); bounded
    (LRU). The SSE id is part of the key: a feed position can equal another event's id."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._frames: OrderedDict[tuple[Format, str, str, str], bytes] = OrderedDict()
        self._encoders: dict[tuple[str, Format], FrameEncoder[Any]] = {}

    def event_frame(
        self, event: Event, sse_id: str | None = None, event_format: Format = "flowqueue"
    ) -> bytes:
        sse_id = sse_id or event.id
        key = (event_format, sse_id, event.run_id, event.id)
        cached = self._frames.get(key)
        if cached is not None:
            self._frames.move_to_end(key)
            return cached
        body = event.to_json() if event_format == "flowqueue" else encode_cloudevent(event)
        encoded = b"id: " + sse_id.encode() + b"\ndata: " + body + b"\n\n"
        self._frames[key] = encoded
        if len(self._frames) > self._size:
            self._frames.popitem(last=False)
        return encoded

    def run_encoder(
        self, keep_open: bool, event_format: Format = "flowqueue"
    ) -> FrameEncoder[Event]:
        """A run stream's frames; without ``keep_open`` it ends after the terminal event."""
        ends = None if keep_open else _terminal
        return self._encoder(
            "run-open" if keep_open else "run",
            event_format,
            lambda: FrameEncoder(lambda event: self.event_frame(event, None, event_format), ends),
        )

    def feed_encoder(self, event_format: Format = "flowqueue") -> FrameEncoder[FeedEntry]:
        """The feed's frames: SSE ids are feed positions."""
        return self._encoder(
            "feed",
            event_format,
            lambda: FrameEncoder(
                lambda entry: self.event_frame(entry.event, entry.id, event_format), None
            ),
        )

    def _encoder(
        self, stream: str, event_format: Format, make: Callable[[], FrameEncoder[T]]
    ) -> FrameEncoder[T]:
        """One encoder per kind of stream and format, kept: clients share its frames."""
        encoder = self._encoders.get((stream, event_format))
        if encoder is None:
            encoder = self._encoders[stream, event_format] = make()
        return encoder


def _terminal(event: Event) -> bool:
    return event.kind in TERMINAL_KINDS


@dataclass(frozen=True, eq=False)
class Frames:
    """Items encoded as SSE frames: the first ``count`` items of what was encoded (fewer
    when the stream ``ends`` at one of them)."""

    data: bytes
    count: int
    ends: bool

    @cached_property
    def chunk(self) -> bytes:
        """``data`` as one HTTP/1.1 chunk, to write straight to a client's transport."""
        return b"%x\r\n%b\r\n" % (len(self.data), self.data)


class FrameEncoder(Generic[T]):
    """How one kind of stream frames its items, and after which item it ends. One
    instance per kind and process (hashed by identity), so that every client of a live
    message shares one encoding of it."""

    def __init__(self, frame: Callable[[T], bytes], ends: Callable[[T], bool] | None) -> None:
        self._frame = frame
        self._ends = ends

    def encode(self, items: Sequence[T]) -> Frames:
        frames = []
        for item in items:
            frames.append(self._frame(item))
            if self._ends is not None and self._ends(item):
                return Frames(b"".join(frames), len(frames), True)
        return Frames(b"".join(frames), len(frames), False)
