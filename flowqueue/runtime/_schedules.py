"""The schedule pump: fires the ticks of a worker's schedules that fall due.

Every worker's timer pump calls ``SchedulePump.pump_once`` on each pass; there is no beat
process and nothing to elect. A pass reads the schedules' marks only when one of them has
a tick due by this worker's clock, works out the due ticks (``due_ticks``: the missed
policy), picks a run id for each and offers them all to Redis in one claim. The claim
gives each (schedule, tick) to exactly one pump; the winner starts the run. A worker that
dies between its claim and the start loses that firing (its ``trigger.fired`` event
names a run that never started): a firing is claimed exactly once and started at most once.
The claim appends each won tick's ``trigger.fired`` to the trigger registry in the same
script, so the registry counts firings exactly.

A pump may look ``lead_ms`` ahead: it claims a tick that early and its run is started
then, its entry steps sent with a countdown to the tick, so starting many runs at one
tick does not make the last of them late (the worker holds the message until the tick).
The grace and the missed policy still count from the real clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flowqueue.backend.redis.schedules import RedisSchedules
from flowqueue.backend.redis.triggers import TriggerEvent
from flowqueue.model.ids import ms_to_datetime, new_run_id
from flowqueue.model.schedules import (
    GRACE_MS,
    ScheduleSpec,
    due_ticks,
    next_fire_times,
    ticks_after,
)
from flowqueue.model.timers import now_ms

log = logging.getLogger(__name__)

NEVER = 2**63  # the next tick of a schedule that has none left


@dataclass(frozen=True)
class Firing:
    """A tick this pump won, and the run it started for it."""

    spec: ScheduleSpec
    tick_ms: int
    run_id: str


StartRun = Callable[[Firing], object]  # starts the run: flow and input from the spec


class SchedulePump:
    """Fires a worker's schedules; any number of workers may run one with the same list."""

    def __init__(
        self,
        specs: Iterable[ScheduleSpec],
        backend: RedisSchedules,
        start: StartRun,
        grace_ms: int = GRACE_MS,
        clock: Callable[[], int] = now_ms,
        lead_ms: int = 0,
    ) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.backend = backend
        self._start = start
        self.grace_ms = grace_ms
        self._clock = clock
        self.lead_ms = lead_ms
        self._next: dict[str, int] = dict.fromkeys(self.specs, 0)  # 0: look on the first pass
        self._last_now = 0

    def pump_once(self) -> list[Firing]:
        """Claim every due tick and start a run for each one won; returns those."""
        now = self._clock()
        if now < self._last_now:  # the clock went back: look at every schedule again
            self._next = dict.fromkeys(self.specs, 0)
        self._last_now = now
        ahead = now + self.lead_ms
        names = [name for name, at in self._next.items() if at <= ahead]
        if not names:
            return []
        marks = self.backend.marks(names)
        offered: list[tuple[TriggerEvent, Firing]] = []
        for name in names:
            spec = self.specs[name]
            for tick in due_ticks(spec, marks[name], ahead, self.grace_ms + self.lead_ms):
                firing = Firing(spec, tick, new_run_id())
                offered.append((self._event(firing, now), firing))
            self._next[name] = next(ticks_after(spec, ahead), NEVER)
        outcomes = self.backend.claim([event for event, _ in offered])
        won = [
            firing
            for (_, firing), outcome in zip(offered, outcomes, strict=True)
            if outcome == "won"
        ]
        for firing in won:
            try:
                self._start(firing)
            except Exception:  # one schedule's failure must not stop the others
                log.exception("schedule %s: could not start its run", firing.spec.name)
        return won

    @staticmethod
    def _event(firing: Firing, now: int) -> TriggerEvent:
        spec = firing.spec
        return TriggerEvent(
            kind="trigger.fired",
            trigger="schedule",
            name=spec.name,
            ts=ms_to_datetime(now),
            flow=spec.flow,
            tick_ms=firing.tick_ms,
            run_id=firing.run_id,
        )

    def seconds_to_next(self) -> float:
        """Seconds until the earliest tick this pump will look for (0: look now)."""
        if not self._next:
            return float("inf")
        return max(0.0, (min(self._next.values()) - self.lead_ms - self._clock()) / 1000)

    def next_fire_times(self, count: int = 1) -> dict[str, list[int]]:
        """Each schedule's next ``count`` ticks after now, by name (for the API and CLI)."""
        now = self._clock()
        return {name: next_fire_times(spec, now, count) for name, spec in self.specs.items()}
