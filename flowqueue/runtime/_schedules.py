"""The schedule pump: fires the ticks of a worker's schedules that fall due.

Every worker's timer pump calls ``SchedulePump.pump_once`` on each pass; there is no beat
process and nothing to elect. A pass reads the schedules' marks only when one of them has
a tick due by this worker's clock, works out the due ticks (``due_ticks``: the missed
policy), picks a run id for each and offers them all to Redis in one claim. The claim
gives each (schedule, tick) to exactly one pump; the winner starts the run and confirms
it. The claim appends each won tick's ``trigger.fired`` to the trigger registry and owes
its start in the same script, so the registry counts firings exactly; a start not
confirmed within ``REDO_MS`` (its worker died, or Redis or the broker was away) is taken
by the next pump that passes and started again with the same run id, so every firing's
run starts once (``start`` must do nothing twice: ``Orchestrator.start_owed``).

A pump may look ``lead_ms`` ahead: it claims a tick that early and its run is started
then, its entry steps sent with a countdown to the tick, so starting many runs at one
tick does not make the last of them late (the worker holds the message until the tick).
The grace and the missed policy still count from the real clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from flowqueue.backend.redis.schedules import OwedStart, RedisSchedules
from flowqueue.backend.redis.triggers import TriggerEvent
from flowqueue.errors import InvalidEvent, InvalidInput
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

    @property
    def owed(self) -> OwedStart:
        return OwedStart(self.spec.name, self.tick_ms, self.run_id)


StartRun = Callable[[Firing], object]  # starts the run: flow and input from the spec
Submit = Callable[[Callable[[], None]], object]  # runs a start (on a thread pool, say)


def _now(call: Callable[[], None]) -> None:
    call()


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
        submit: Submit = _now,
    ) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.backend = backend
        self._start = start
        self._submit = submit
        self._next_retake = 0  # when to look for owed starts again
        self.grace_ms = grace_ms
        self._clock = clock
        self.lead_ms = lead_ms
        self._next: dict[str, int] = dict.fromkeys(self.specs, 0)  # 0: look on the first pass
        self._last_now = 0

    def pump_once(self) -> list[Firing]:
        """Claim every due tick and start a run for each one won; returns those. Once a
        second, also start the owed starts another pump did not confirm in time."""
        now = self._clock()
        if now < self._last_now:  # the clock went back: look at every schedule again
            self._next = dict.fromkeys(self.specs, 0)
            self._next_retake = 0
        self._last_now = now
        if now >= self._next_retake:
            self._next_retake = now + 1_000
            for owed in self.backend.unstarted(self.specs.keys(), now):
                log.warning(
                    "schedule %s: starting run %s of tick %s again (its start was not confirmed)",
                    owed.name,
                    owed.run_id,
                    owed.tick_ms,
                )
                self._begin(Firing(self.specs[owed.name], owed.tick_ms, owed.run_id))
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
        outcomes = self.backend.claim([event for event, _ in offered], now)
        won = [
            firing
            for (_, firing), outcome in zip(offered, outcomes, strict=True)
            if outcome == "won"
        ]
        for firing in won:
            self._begin(firing)
        return won

    def _begin(self, firing: Firing) -> None:
        def start() -> None:
            try:
                self._start(firing)
            except (InvalidEvent, InvalidInput) as exc:  # starting again cannot help
                log.error("schedule %s: its run cannot start: %s", firing.spec.name, exc)
            except Exception:  # one schedule's failure must not stop the others
                log.exception(
                    "schedule %s: could not start run %s (another pass starts it again)",
                    firing.spec.name,
                    firing.run_id,
                )
                return
            self.backend.started(firing.owed)

        self._submit(start)

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
