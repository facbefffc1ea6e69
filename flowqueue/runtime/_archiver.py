"""The archiver: copies ended runs' logs to the archive (``FLOWQUEUE_ARCHIVE_URL``).

With an archive, a run that ends waits in Redis (``Keys.archiving``) with no expiry. The
archiver takes the longest-waiting ones in batches, writes each batch in one Postgres
transaction, and only then starts their retention (``archived.lua``): a run is never
deleted from Redis before the archive holds it, however long the archive is away.

Every worker runs one; they take turns through a lease in Redis, so one copies at a time
and another takes over within ``LEASE_S`` of it stopping. A copy is idempotent (a run
saved twice is one row), so a worker dying between the two writes costs a second copy,
never a lost or doubled run.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid

from flowqueue.backend.redis.archiving import RedisArchiving
from flowqueue.backend.redis.store import RedisEventStore
from flowqueue.runtime._connections import Connections

log = logging.getLogger(__name__)
LEASE_S = 30.0  # a stopped archiver's lease lapses after this
MAX_BACKOFF_S = 30.0  # the longest pause between tries while Redis or the archive is away


class Archiver:
    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        self.settings = connections.settings
        self.token = f"{os.getpid()}:{uuid.uuid4().hex}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _redis(self) -> tuple[RedisEventStore, RedisArchiving]:
        store = self.connections.store
        assert isinstance(store, RedisEventStore)
        assert store.archive is not None
        return store, RedisArchiving(store)

    def archive_once(self) -> int:
        """Copy one batch of the longest-waiting ended runs, if this worker holds the
        lease; returns how many runs the archive took."""
        store, redis = self._redis()
        if not redis.hold(self.token, int(LEASE_S * 1000)):
            return 0
        try:
            runs, others = redis.take(self.settings.archive_batch)
            if runs:
                assert store.archive is not None
                store.archive.save(runs)
            redis.archived(runs, others)
        except Exception:
            self._release()  # a worker that reaches the archive may take over at once
            raise
        return len(runs)

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                copied = self.archive_once()
            except Exception as exc:  # Redis or Postgres away: runs wait in Redis
                if failures == 0:
                    log.warning(
                        "archiver: %s (retrying until it works; ended runs wait in Redis)", exc
                    )
                failures += 1
                self._stop.wait(min(MAX_BACKOFF_S, 2 ** min(failures, 5)))
                continue
            if failures:
                log.warning("archiver: working again after %d failed tries", failures)
                failures = 0
            if copied < self.settings.archive_batch:
                self._stop.wait(self.settings.archive_poll_seconds)

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, name="flowqueue-archiver", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._release()  # another worker takes over at once

    def _release(self) -> None:
        try:
            self._redis()[1].release(self.token)
        except Exception as exc:  # Redis away: the lease lapses by itself
            log.debug("archiver: lease not released: %s", exc)
