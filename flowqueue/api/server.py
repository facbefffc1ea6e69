"""``serve``: the one place that starts uvicorn (``flowqueue api``), with flowqueue's
timeouts and shutdown bound, in one process or several (``--workers``)."""

from __future__ import annotations

import asyncio
import logging
import os
from http import HTTPStatus
from typing import Any, ClassVar, cast

from celery.utils.imports import symbol_by_name
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from flowqueue.api.app import create_api
from flowqueue.api.problems import problem
from flowqueue.api.sse import TRANSPORT_KEY
from flowqueue.runtime.app import default_app
from flowqueue.runtime.engine import flowqueue_of

logger = logging.getLogger("flowqueue.api")


class HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request head (request
    line and headers) does not arrive within ``head_timeout`` seconds. uvicorn has no such
    bound (its keep-alive timer stops at the first byte): a client sending a few bytes now
    and then would hold a connection forever.

    The timer is armed when the connection opens and when a response completes, and
    cancelled when a request's headers are complete. Bodies are bounded by the JSON body
    reader (``flowqueue.api.body``); a body a route never reads, by this timer, which
    starts again once the response is sent."""

    head_timeout: ClassVar[float] = 10.0
    max_head_bytes: ClassVar[int] = 64 * 1024  # httptools itself sets no bound
    # Per connection (set on the instance once they change):
    _head_timer: asyncio.TimerHandle | None = None
    _head_started = False  # part of a head arrived since the timer was armed
    _head_bytes = 0  # bytes of chunks that began while a head was due
    _head_due = True  # no request in progress: the next bytes are a head

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is not None and data:
            self._head_started = True
        if self._head_due:  # not the rest of a body (say, of a request answered early)
            self._head_bytes += len(data)
        super().data_received(data)
        # Still no end of the head after max_head_bytes: refuse it rather than buffer more.
        if self._head_due and self._head_bytes > self.max_head_bytes:
            self._cancel_head_timer()
            if not self.transport.is_closing():
                detail = (
                    f"the request line and headers are over {self.max_head_bytes} bytes; "
                    "send fewer or shorter headers."
                )
                self.transport.write(_problem(431, detail))
                self.transport.close()

    def on_message_begin(self) -> None:
        self._head_due = True
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        # Live SSE frames are written straight to the transport (api/sse.py LiveStream).
        cast(dict[str, Any], self.scope)[TRANSPORT_KEY] = self.transport
        self._cancel_head_timer()
        self._head_due = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_due = True  # whatever follows is the next request's head

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next head is due now, unless a pipelined request is already being served.
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.transport.is_closing():
            self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_started = False
        self._head_timer = self.loop.call_later(self.head_timeout, self._on_head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _on_head_timeout(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_started:  # a silent idle connection is just closed
            logger.info("closing a connection whose request head stalled (%s)", self.client)
            detail = (
                f"the request line and headers did not arrive within {self.head_timeout:g} s "
                "(FLOWQUEUE_API_HEADER_TIMEOUT_SECONDS); send the whole request head at once."
            )
            self.transport.write(_problem(408, detail, self.server_state.default_headers))
        self.transport.close()


def _problem(status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A whole problem+json response (the API's ``problem``), written before any ASGI app
    sees the request."""
    response = problem(status, detail)
    fields = [*(headers or []), *response.raw_headers, (b"connection", b"close")]
    lines = [b"HTTP/1.1 %d %s" % (status, HTTPStatus(status).phrase.encode())]
    lines += [name + b": " + value for name, value in fields]
    return b"\r\n".join(lines) + b"\r\n\r\n" + response.body


class ServedProtocol(HeadTimeoutProtocol):
    """The protocol ``serve`` runs, its bound set from the app's settings (uvicorn builds
    protocols itself; worker processes import this class by name)."""


# The app a worker process serves, as module:attribute (the CLI's -A / FLOWQUEUE_APP);
# unset: flowqueue's default app.
APP_ENV = "FLOWQUEUE_APP"


def serve(
    app: Any, host: str, port: int, log_level: str, workers: int = 1, app_path: str | None = None
) -> None:
    """Serve ``create_api(app)`` until interrupted. With ``workers`` > 1, that many
    processes share the socket; each loads the app from ``app_path`` (module:attribute,
    default flowqueue's app) and has its own Redis connections and Pub/Sub."""
    import uvicorn

    _configure(app)
    # Open SSE streams would hold a graceful shutdown forever; their clients reconnect
    # elsewhere with Last-Event-ID and lose nothing.
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "http": ServedProtocol,
        "timeout_keep_alive": flowqueue_of(app).settings.api_keep_alive_seconds,
        "timeout_graceful_shutdown": 5,
    }
    if workers == 1:
        uvicorn.run(create_api(app), **options)
        return
    if app_path is None:
        os.environ.pop(APP_ENV, None)
    else:
        os.environ[APP_ENV] = app_path  # the workers are spawned: they inherit it
    uvicorn.run(f"{__name__}:worker_api", factory=True, workers=workers, **options)


def worker_api() -> FastAPI:
    """The API of one worker process of ``serve(..., workers=N)``."""
    path = os.environ.get(APP_ENV)
    app = default_app() if path is None else symbol_by_name(path)
    _configure(app)
    return create_api(app)


def _configure(app: Any) -> None:
    ServedProtocol.head_timeout = flowqueue_of(app).settings.api_header_timeout_seconds
