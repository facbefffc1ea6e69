"""Keeps the leases of the steps this process is running alive.

A step's lease tells a redelivered copy of its message that the step is still running
(so it waits instead of running twice); if the process dies, renewals stop and the lease
runs out, so the next delivery runs the step again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from flowqueue.backend.redis.coordinator import RedisRunCoordinator

log = logging.getLogger(__name__)


class LeaseKeeper:
    def __init__(self, coordinator: RedisRunCoordinator, lease_ms: int) -> None:
        self.coordinator = coordinator
        self.lease_ms = lease_ms
        self._held: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(self, run_id: str, step: str) -> Iterator[None]:
        with self._lock:
            self._held.add((run_id, step))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._renew_forever, name="flowqueue-leases", daemon=True
                )
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._held.discard((run_id, step))

    def _renew_forever(self) -> None:
        interval = self.lease_ms / 3000  # three renewals per lease
        while not self._wake.wait(interval):
            with self._lock:
                held = list(self._held)
            for run_id, step in held:
                try:
                    self.coordinator.renew_lease(run_id, step, self.lease_ms)
                except Exception as exc:  # Redis away: the next renewal retries
                    log.warning("could not renew lease of %s/%s: %s", run_id, step, exc)

    def stop(self) -> None:
        self._wake.set()
