"""Exporting every run's lifecycle events as CloudEvents, to another system.

An ``Exporter`` reads the lifecycle feed (every run's ``flow.*`` and ``step.*`` events)
in order and hands each batch, as CloudEvents 1.0, to a ``Sink``: a function of yours
(Kafka, a queue, a file), or ``HttpSink``, which POSTs them in the CloudEvents HTTP
binding's structured (or batched) mode, the way Knative brokers and Argo Events take
them. It keeps its position in Redis under its name once the sink has taken a batch, so
a restarted exporter goes on where it stopped: every event is handed at least once (a
batch the sink took just before a crash is handed again; ``id`` + ``source`` tell a
repeat). A sink that raises gets the same batch again after a pause that doubles up to
``MAX_PAUSE_S``. The feed is capped (``FLOWQUEUE_FEED_MAXLEN``): an exporter stopped for
longer than the feed keeps goes on from its oldest entry. ``flowqueue export URL`` runs
one with an ``HttpSink``.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence

from flowqueue.backend.store import EventStore
from flowqueue.errors import ConfigurationError, ExportFailed
from flowqueue.model.cloudevents import (
    BATCH_CONTENT_TYPE,
    CONTENT_TYPE,
    CloudEvent,
    to_cloudevent,
)
from flowqueue.model.validation import check_identifier

log = logging.getLogger(__name__)

Sink = Callable[[Sequence[CloudEvent]], None]  # takes a batch, or raises to get it again
MAX_PAUSE_S = 30.0


class Exporter:
    """Hands the feed's events after its kept position to ``sink``, in batches of at most
    ``batch``, looking for new ones every ``poll_seconds`` once it has caught up."""

    def __init__(
        self,
        store: EventStore,
        sink: Sink,
        *,
        name: str = "default",
        batch: int = 100,
        poll_seconds: float = 0.2,
    ) -> None:
        check_identifier("exporter name", name)
        if batch < 1:
            raise ConfigurationError("an export batch holds at least one event (--batch 1+).")
        self.store, self.sink, self.name = store, sink, name
        self.batch, self.poll_seconds = batch, poll_seconds
        self._position: str | None = None  # as kept, once read: this process keeps it since

    @property
    def position(self) -> str | None:
        """The feed position up to which every event was handed on (None: none yet)."""
        if self._position is None:
            self._position = self.store.export_position(self.name)
        return self._position

    def export_once(self) -> int:
        """Hand the next batch to the sink, and keep the position after it. How many
        events it held (0: caught up). What the sink raises propagates; the position
        stays, so the same batch goes again."""
        entries = self.store.read_feed(after=self.position, limit=self.batch)
        if not entries:
            return 0
        self.sink([to_cloudevent(entry.event) for entry in entries])
        self.store.save_export_position(self.name, entries[-1].id)
        self._position = entries[-1].id
        return len(entries)

    def run(self, stop: threading.Event | None = None) -> None:
        """Export until ``stop`` is set (for ever without one)."""
        stop = stop or threading.Event()
        pause = self.poll_seconds
        while not stop.is_set():
            try:
                handed = self.export_once()
            except Exception as exc:  # the sink or Redis: the same batch, after a pause
                pause = min(MAX_PAUSE_S, max(pause * 2, 1.0))
                log.warning("export %s: %s; trying again in %.0f s", self.name, exc, pause)
                stop.wait(pause)
                continue
            pause = self.poll_seconds
            if handed < self.batch:  # caught up: look again shortly
                stop.wait(self.poll_seconds)


class HttpSink:
    """POSTs CloudEvents to ``url``: one request per event in structured mode
    (``application/cloudevents+json``), or one per batch in batched mode
    (``application/cloudevents-batch+json``). Any answer but 2xx raises
    ``ExportFailed``."""

    def __init__(
        self,
        url: str,
        *,
        batched: bool = False,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"export URL {url!r} must start with http:// or https://.")
        self.url, self.batched, self.timeout = url, batched, timeout
        self.headers = dict(headers or {})

    def __call__(self, events: Sequence[CloudEvent]) -> None:
        if self.batched:
            body = b"[" + b",".join(event.model_dump_json().encode() for event in events) + b"]"
            self._post(body, BATCH_CONTENT_TYPE)
            return
        for event in events:
            self._post(event.model_dump_json().encode(), CONTENT_TYPE)

    def _post(self, body: bytes, content_type: str) -> None:
        headers = {**self.headers, "Content-Type": content_type}
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:  # refused, unreachable, timed out
            raise ExportFailed(f"could not reach {self.url}: {exc}") from exc
        if not 200 <= status < 300:
            raise ExportFailed(f"{self.url} answered {status} to a CloudEvent POST")
