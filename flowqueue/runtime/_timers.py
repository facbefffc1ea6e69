"""Durable timers and the pump that hands them to Celery.

Every delay (a retry's backoff, a sleep, an await's timeout) is a member of one Redis
sorted set scored by its due time, never a long Celery countdown: on a Redis broker those
sit in worker memory, come back after the visibility timeout and die with the worker.
Each worker runs a pump that moves timers due within a short horizon to a "handed" set
and sends their step messages with the remaining countdown. A timer can be handed over
twice (its worker died, or two pumps raced); the step's claim in the coordinator lets exactly
one delivery through.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowqueue.runtime.engine import Flowqueue

log = logging.getLogger(__name__)
BATCH = 500


class TimerPump:
    """Hands due timers to Celery; one per worker process that consumes (any number)."""

    def __init__(self, fq: Flowqueue) -> None:
        self.fq = fq
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pump_once(self) -> int:
        """Hand over every timer due within the horizon; returns how many."""
        fq = self.fq
        rehand_ms = int(fq.settings.timer_rehand_seconds * 1000)
        due = fq.coordinator.take_due(fq.timer_horizon_ms, BATCH, rehand_ms)
        for member, at_ms in due:
            try:
                fq.orchestrator.fire(member, at_ms)
            except Exception:  # one bad timer must not stop the others; it is handed again
                log.exception("could not hand over timer %s", member)
        return len(due)

    def _loop(self) -> None:
        interval = self.fq.settings.timer_poll_seconds
        while not self._stop.is_set():
            try:
                handed = self.pump_once()
            except Exception as exc:  # Redis away: keep trying, timers wait in Redis
                log.warning("timer pump: %s", exc)
                handed = 0
            if handed < BATCH:
                self._stop.wait(interval)

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="flowqueue-timers", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
