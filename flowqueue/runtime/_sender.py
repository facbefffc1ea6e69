"""Sending a step's delivery: through kombu, or as Redis writes made by a script.

Celery builds every delivery (``Task.apply_async``: routing, headers, ``before_task_publish``
and ``after_task_publish``, the task-sent event). When the broker is the store's own Redis
(one URL for both, the default), kombu does not publish it: a publish batch (kombu 5.7's
Redis transport, ``Producer.batch``) collects the exact writes kombu would make, and they
are handed to the script that decides the send. A new run's entry steps are queued in the
call that records its start, and an emit's next step in the call that claims it, so
there is no moment where a claim is recorded and its message not sent (or the reverse).
It also costs a fraction of a publish: no client per publish, no extra round trip
(bench/README.md). With any other broker, or ``task_always_eager``, Celery publishes.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError

from flowqueue.backend.coordinator import BrokerWrite
from flowqueue.backend.redis.coordinator import RedisRunCoordinator
from flowqueue.errors import ConfigurationError

log = logging.getLogger(__name__)

_DIRECT_SCHEMES = frozenset({"redis", "rediss"})


class StepMessage(NamedTuple):
    """A Celery message of a step, to send: its task and ``apply_async`` options."""

    task: Any
    options: dict[str, Any]


def same_redis(broker_url: str | None, store_url: str) -> bool:
    """Whether the broker is the store's Redis: same scheme, host, port, database and
    credentials (a different database is a different broker)."""
    if not broker_url:
        return False
    broker, store = urlsplit(broker_url), urlsplit(store_url)
    if broker.scheme not in _DIRECT_SCHEMES or broker.scheme != store.scheme:
        return False

    def where(url: Any) -> tuple[Any, ...]:
        database = (url.path or "/").strip("/") or "0"
        return (url.hostname or "localhost", url.port or 6379, database, url.username, url.password)

    return bool(where(broker) == where(store))


class _Capture:
    """A kombu publish batch that keeps the writes it would execute (the protocol of
    ``kombu.transport.redis.PublishBatch``: the channel routes, the batch collects)."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.writes: list[BrokerWrite] = []
        self._collecting: list[BrokerWrite] | None = None

    def publish(self, message: Any, **kwargs: Any) -> Any:
        self._collecting = self.writes
        try:
            return self.channel.basic_publish(message, _publish_batch=self, **kwargs)
        finally:
            self._collecting = None

    def add(self, name: str, *args: Any) -> None:
        if self._collecting is None:
            raise RuntimeError("a broker write outside a publish")
        self._collecting.append((name, tuple(args)))

    def flush(self) -> None:
        """Nothing: the writes are the caller's to make, in its script."""

    def discard(self) -> None:
        self.writes = []

    def close(self) -> None:
        """Nothing to release: no pipeline was opened."""


class _Producer:
    """This process's producer on the broker, whose publish batches capture."""

    def __init__(self, app: Any) -> None:
        self.pid = os.getpid()
        self.connection = app.connection_for_write()
        self.producer = app.amqp.Producer(self.connection, auto_declare=False)
        channel = self.producer.channel  # connects: an unreachable broker raises here
        # Without batches (kombu < 5.7, or retry_on_timeout set) kombu would publish at
        # once, before the claim: then Celery publishes, after it.
        self.capable = bool(
            getattr(channel, "supports_batch_publish", False)
            and hasattr(channel, "create_publish_batch")
        )
        self.capture = _Capture(channel)
        # The producer asks its channel for a batch; this channel's is the capture.
        channel.create_publish_batch = lambda max_size: self.capture


class Sender:
    """Builds and sends step deliveries for one app (``direct``: as broker writes)."""

    def __init__(
        self, app: Any, store_url: str, coordinator: Callable[[], RedisRunCoordinator]
    ) -> None:
        self.app = app
        self.store_url = store_url
        self._coordinator = coordinator  # this process's: it makes the writes
        self._locks: dict[int, threading.Lock] = {}
        self._producer: _Producer | None = None

    def _lock(self) -> threading.Lock:
        """This process's lock: one a parent's thread held when it forked stays held."""
        return self._locks.setdefault(os.getpid(), threading.Lock())

    @cached_property
    def direct(self) -> bool:
        """Whether deliveries are broker writes made by flowqueue's scripts. Decided on
        first use; an unreachable broker raises (and it is decided next time)."""
        conf = self.app.conf
        options = conf.broker_transport_options or {}
        if conf.task_always_eager or options.get("global_keyprefix"):
            return False
        if not same_redis(conf.broker_url, self.store_url):
            return False
        with self._lock():
            capable = self._open().capable
        if not capable:
            log.warning("kombu cannot batch publishes here: Celery sends the steps")
        return capable

    def _open(self) -> _Producer:
        producer = self._producer
        if producer is None or producer.pid != os.getpid():  # never a parent's connection
            # The broker is the store: a Redis away is the store's error, at once (kombu
            # retries its connect for 6 s, then raises its own).
            self._coordinator().client.ping()
            try:
                producer = self._producer = _Producer(self.app)
            except OperationalError as exc:  # the broker is the store: its Redis is away
                raise RedisConnectionError(str(exc)) from exc
        return producer

    def writes(self, message: StepMessage) -> list[BrokerWrite]:
        """The broker writes of ``message`` (``apply_async``), made by nobody yet."""
        task, options = message
        with self._lock():
            opened = self._open()
            opened.capture.writes = []
            with opened.producer.batch():
                task.apply_async(producer=opened.producer, retry=False, **options)
            writes = opened.capture.writes
        if not any(name == "lpush" for name, _ in writes):
            raise ConfigurationError(
                f"Celery routes step task {task.name!r} to no queue (a broadcast or an "
                "exchange with no queue bound): route it to a queue in task_routes; "
                "nothing was written."
            )
        return writes

    def send(self, message: StepMessage) -> None:
        """Send one message now: its writes in one round trip, or Celery publishes it."""
        if self.direct:
            self._coordinator().send(self.writes(message))
        else:
            message.task.apply_async(**message.options)

    def sends(self, messages: Sequence[StepMessage]) -> list[BrokerWrite]:
        """The broker writes of several messages, in order."""
        return [write for message in messages for write in self.writes(message)]
