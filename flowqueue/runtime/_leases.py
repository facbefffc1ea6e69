"""Keeps the leases of the steps this process is running alive, and makes the deferred
claims that fall due.

A step's lease tells a redelivered copy of its message that the step is still running
(so it waits instead of running twice); if the process dies, renewals stop and the lease
runs out, so the next delivery runs the step again. A first delivery that deferred its
claim (``_deferred``) holds no lease until its claim is made: here, once its
``FLOWQUEUE_CLAIM_DEFER_SECONDS`` are up, if its body has not made it first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flowqueue.backend.redis.coordinator import RedisRunCoordinator
from flowqueue.runtime._deferred import ClaimLost, DeferredClaim

log = logging.getLogger(__name__)
RETRY_CLAIM_S = 1.0  # a deferred claim that met a Redis error is tried again this much later


class LeaseKeeper:
    """One thread per process: it renews three times per lease and, while deferred
    claims are held, looks for those due every ``defer_s`` (so one is made between one
    and two of them into its body). A step's start wakes it only from a renewal's long
    wait: a wake per step would cost more than the claim it defers."""

    def __init__(self, coordinator: RedisRunCoordinator, lease_ms: int, defer_s: float) -> None:
        self.coordinator = coordinator
        self.lease_ms = lease_ms
        self.defer_s = defer_s
        # What this process runs: (run, step) -> its deferred claim, or None (claimed).
        self._held: dict[tuple[str, str], DeferredClaim | None] = {}
        self._changed = threading.Condition(threading.Lock())
        self._stopped = False
        self._waiting_long = False  # no deferred claim held when it last looked
        self._thread: threading.Thread | None = None

    @contextmanager
    def holding(
        self, run_id: str, step: str, deferred: DeferredClaim | None = None
    ) -> Iterator[None]:
        key = (run_id, step)
        with self._changed:
            self._held[key] = deferred
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._renew_forever, name="flowqueue-leases", daemon=True
                )
                self._thread.start()
            elif deferred is not None and self._waiting_long:
                self._waiting_long = False
                self._changed.notify()
        try:
            yield
        finally:
            with self._changed:
                self._held.pop(key, None)

    def _renew_forever(self) -> None:
        interval = self.lease_ms / 3000  # three renewals per lease
        renew_at = time.monotonic() + interval
        while True:
            with self._changed:
                if self._stopped:
                    return
                now = time.monotonic()
                deferring = [d for d in self._held.values() if d is not None]
                due = [d for d in deferring if d.due <= now and d.pending]
                if not due and now < renew_at:
                    self._waiting_long = not deferring
                    self._changed.wait(self.defer_s if deferring else renew_at - now)
                    continue
                held = [key for key, d in self._held.items() if d is None or d.won]
            for claim in due:
                self._make(claim)
            if time.monotonic() >= renew_at:
                renew_at = time.monotonic() + interval
                self._renew(held)

    def _make(self, deferred: DeferredClaim) -> None:
        try:
            deferred.make()
        except ClaimLost:
            pass  # the body finds out at its next write or at its end
        except Exception as exc:  # Redis away: try again shortly (or the body makes it)
            log.warning("could not claim %s/%s: %s", deferred.started.run_id,
                        deferred.started.step, exc)  # fmt: skip
            deferred.due = time.monotonic() + RETRY_CLAIM_S

    def _renew(self, held: list[tuple[str, str]]) -> None:
        for run_id, step in held:
            try:
                self.coordinator.renew_lease(run_id, step, self.lease_ms)
            except Exception as exc:  # Redis away: the next renewal retries
                log.warning("could not renew lease of %s/%s: %s", run_id, step, exc)

    def stop(self) -> None:
        with self._changed:
            self._stopped = True
            self._changed.notify()
