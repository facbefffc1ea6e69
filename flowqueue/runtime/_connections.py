"""The backend one process talks to: the event store, the run coordinator and the lease
keeper, made on first use in each process (Celery's prefork pool forks, and a connection
must never be shared across a fork). ``memory://`` is a ``redis-server`` of this app's
own, so it runs the same Lua scripts as production."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flowqueue.backend.archive import Archive
from flowqueue.backend.redis.coordinator import RedisRunCoordinator
from flowqueue.backend.redis.embedded import EmbeddedRedis
from flowqueue.backend.redis.keys import Keys
from flowqueue.backend.redis.store import RedisEventStore
from flowqueue.backend.redis.topology import check_standalone
from flowqueue.backend.store import EventStore
from flowqueue.errors import ConfigurationError
from flowqueue.runtime._leases import LeaseKeeper
from flowqueue.settings import MEMORY_URL, Settings


def open_archive(settings: Settings) -> Archive | None:
    """The archive ``FLOWQUEUE_ARCHIVE_URL`` names (connected on first use), or None."""
    if settings.archive_url is None:
        return None
    try:
        from flowqueue.backend.postgres.archive import PostgresArchive
    except ImportError as exc:
        raise ConfigurationError(
            "FLOWQUEUE_ARCHIVE_URL is set, but the Postgres driver is not installed: "
            "pip install 'flowqueue[postgres]' (or unset FLOWQUEUE_ARCHIVE_URL)."
        ) from exc
    return PostgresArchive(settings.archive_url)


@dataclass(frozen=True)
class _Opened:
    pid: int
    store: EventStore
    coordinator: RedisRunCoordinator
    leases: LeaseKeeper


class Connections:
    def __init__(self, settings: Settings, on_open: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self._on_open = on_open  # called once a process has opened its connections
        self.keys = Keys(settings.key_prefix)
        self.lease_ms = int(settings.step_lease_seconds * 1000)
        self._opened: _Opened | None = None
        self._lock = threading.RLock()
        self._embedded: tuple[str, weakref.finalize[[], Connections]] | None = None

    @property
    def memory(self) -> bool:
        return self.settings.redis_url == MEMORY_URL

    @property
    def store(self) -> EventStore:
        return self._open().store

    @property
    def coordinator(self) -> RedisRunCoordinator:
        return self._open().coordinator

    @property
    def leases(self) -> LeaseKeeper:
        return self._open().leases

    def _open(self) -> _Opened:
        opened = self._opened
        if opened is None or opened.pid != os.getpid():
            with self._lock:
                opened = self._opened
                if opened is None or opened.pid != os.getpid():
                    backend = self.backend_settings()
                    archive = open_archive(self.settings)
                    store = RedisEventStore(backend, archive=archive)
                    check_standalone(backend.redis_url)
                    coordinator = RedisRunCoordinator(store)
                    defer = self.settings.claim_defer_seconds
                    leases = LeaseKeeper(coordinator, self.lease_ms, defer)
                    opened = self._opened = _Opened(os.getpid(), store, coordinator, leases)
                    if self._on_open is not None:
                        self._on_open()
        return opened

    def backend_settings(self) -> Settings:
        """The settings the backend connects with: ``memory://`` becomes a redis-server
        started on first use in a temporary directory, stopped by ``close()`` or at exit."""
        if not self.memory:
            return self.settings
        with self._lock:
            if self._embedded is None:
                server = EmbeddedRedis().start()
                self._embedded = (server.url, weakref.finalize(self, server.stop))
        return self.settings.model_copy(update={"redis_url": self._embedded[0]})

    def reset_after_fork(self, **_: Any) -> None:
        """Drop connections inherited from a parent process (never shared across forks);
        the ``worker_process_init`` receiver."""
        self._opened = None
        self._lock = threading.RLock()

    def close(self) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            opened.leases.stop()
            opened.store.close()
        if self._embedded is not None:
            self._embedded[1]()
            self._embedded = None
