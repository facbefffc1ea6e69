"""SSE frames: one event per frame, its id as the SSE ``id:`` (so ``Last-Event-ID``
resumes after it), its JSON as ``data:``. No ``event:`` field, so a browser's
``EventSource.onmessage`` sees every event.

A live event goes to every client following its run; the cache encodes it once per
process instead of once per client.
"""

from __future__ import annotations

from collections import OrderedDict

from redis.exceptions import RedisError

from flowqueue.api.problems import Problem
from flowqueue.errors import FlowqueueError
from flowqueue.model.events import Event

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
    """The frames of recently sent events, by (SSE id, run, event id); bounded (LRU).
    The SSE id is part of the key: a feed position can equal another event's id."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._frames: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()

    def event_frame(self, event: Event, sse_id: str | None = None) -> bytes:
        sse_id = sse_id or event.id
        key = (sse_id, event.run_id, event.id)
        cached = self._frames.get(key)
        if cached is not None:
            self._frames.move_to_end(key)
            return cached
        encoded = b"id: " + sse_id.encode() + b"\ndata: " + event.to_json() + b"\n\n"
        self._frames[key] = encoded
        if len(self._frames) > self._size:
            self._frames.popitem(last=False)
        return encoded
