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
from collections.abc import Callable

from flowqueue.runtime._connections import Connections
from flowqueue.runtime._retention import RetentionSweep
from flowqueue.runtime._schedules import SchedulePump

log = logging.getLogger(__name__)
BATCH = 500


class TimerPump:
    """Hands due timers to Celery; one per worker process that consumes (any number)."""

    def __init__(
        self,
        connections: Connections,
        fire: Callable[[str, int], None],
        horizon_ms: Callable[[], int],
        schedules: Callable[[], SchedulePump | None] = lambda: None,
    ) -> None:
        self.connections = connections
        self.settings = connections.settings
        self._fire = fire  # sends a timer's step, to arrive at its due time
        self._horizon_ms = horizon_ms  # read when pumping: the app's config may change
        self._retention = RetentionSweep(connections)  # expired runs, on the same thread
        self._schedules = schedules  # the app's schedules (read each pass: flows may change)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def pump_once(self) -> int:
        """Hand over every timer due within the horizon; returns how many."""
        rehand_ms = int(self.settings.timer_rehand_seconds * 1000)
        due = self.connections.coordinator.take_due(self._horizon_ms(), BATCH, rehand_ms)
        for member, at_ms in due:
            try:
                self._fire(member, at_ms)
            except Exception:  # one bad timer must not stop the others; it is handed again
                log.exception("could not hand over timer %s", member)
        return len(due)

    def _loop(self) -> None:
        interval = self.settings.timer_poll_seconds
        outage = _Outage()
        while not self._stop.is_set():
            errors: list[str] = []
            try:
                handed = self.pump_once()
            except Exception as exc:  # Redis away: keep trying, timers wait in Redis
                handed = 0
                errors.append(f"timer pump: {exc}")
            try:
                self._retention.maybe()
            except Exception as exc:  # the next sweep drops what this one could not
                errors.append(f"retention sweep: {exc}")
            schedules = None
            try:
                schedules = self._schedules()
                if schedules is not None:
                    schedules.pump_once()
            except Exception as exc:  # Redis away: the next pass claims what is still due
                errors.append(f"schedule pump: {exc}")
            outage.pass_ended(errors)
            if errors:  # back off while Redis is away, up to MAX_BACKOFF_S
                self._stop.wait(outage.backoff(interval))
            elif handed < BATCH:
                # Wake for a schedule's next tick too: its lateness is not the poll's.
                soonest = schedules.seconds_to_next() if schedules else interval
                self._stop.wait(min(interval, soonest))

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="flowqueue-timers", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


MAX_BACKOFF_S = 2.0  # the longest pause between passes while Redis is away


class _Outage:
    """The pump's view of Redis trouble: one warning when passes start failing (not one
    per pass, ten a second), one line when they work again, and a growing pause."""

    def __init__(self) -> None:
        self.failures = 0  # passes in a row with an error

    def pass_ended(self, errors: list[str]) -> None:
        if errors:
            if self.failures == 0:
                log.warning("%s; retrying until it works (timers wait in Redis)", "; ".join(errors))
            self.failures += 1
        elif self.failures:
            log.warning("timer pump: working again after %d failed passes", self.failures)
            self.failures = 0

    def backoff(self, interval: float) -> float:
        return float(min(MAX_BACKOFF_S, interval * 2 ** min(self.failures, 10)))
