"""Schedules in Redis: the atomic claim of a tick (``claim_ticks.lua``), pause and resume
(``pause_schedule.lua``), and reading their state back.

Each schedule has a mark in ``Keys.schedules``: the ms its next tick must be later than.
A claim wins a tick only past the mark and moves the mark to it, so any number of pumps
offering the same ticks fire each once, and a tick older than one already fired never
fires. A won tick's start is owed in ``Keys.schedules_starting`` until ``started``
confirms it; ``unstarted`` hands one owed past its redo time to another pump, so a pump
that dies between its claim and the start loses nothing (exactly once: a run id chosen
before the claim, started as often as it takes, runs once). Pauses are kept in
``Keys.schedules_paused``; every firing, pause and resume is
also a ``TriggerEvent`` in the trigger registry (``backend/redis/triggers.py``), written
by the same script, the history the API and CLI show (the state lives in the hashes).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Literal, NamedTuple

import redis
from pydantic import BaseModel

from flowqueue.backend.redis.keys import Keys
from flowqueue.backend.redis.scripts import CLAIM_TICKS, PAUSE_SCHEDULE, RETAKE_STARTS
from flowqueue.backend.redis.triggers import HISTORY_MAXLEN, TriggerEvent, last_field
from flowqueue.model.ids import as_text, ms_to_datetime

ClaimOutcome = Literal["won", "fired", "paused"]
_OUTCOMES: dict[int, ClaimOutcome] = {1: "won", 0: "fired", 2: "paused"}
# How long a won tick's start may take before another pump starts it: far longer than a
# start (milliseconds), short enough that a dead worker's firing runs soon after.
REDO_MS = 10_000
# Owed starts one pass looks at (more wait for the next pass).
RETAKE_LIMIT = 100


class OwedStart(NamedTuple):
    """A won tick whose run is not confirmed started (``Keys.schedules_starting``)."""

    name: str
    tick_ms: int
    run_id: str

    @property
    def member(self) -> str:
        return f"{self.tick_ms} {self.run_id} {self.name}"

    @classmethod
    def of(cls, member: Any) -> OwedStart:
        tick, run_id, name = as_text(member).split(" ", 2)
        return cls(name, int(tick), run_id)


class ScheduleState(BaseModel):
    """What Redis holds for one schedule."""

    mark_ms: int | None = None  # its next tick must be later (None: it never fired)
    paused_ms: int | None = None  # when it was paused (None: it runs)


class RedisSchedules:
    """The schedule calls on one Redis client."""

    def __init__(
        self, client: redis.Redis, keys: Keys, history_maxlen: int = HISTORY_MAXLEN
    ) -> None:
        self.client = client
        self.keys = keys
        self.history_maxlen = history_maxlen
        self._keys = {
            "fired": keys.schedules,
            "paused": keys.schedules_paused,
            "starting": keys.schedules_starting,
            "registry": keys.trigger_registry,
        }

    def marks(self, names: Sequence[str]) -> dict[str, int | None]:
        """Each schedule's mark: the ms its next tick must be later than (None: never fired)."""
        if not names:
            return {}
        values = self.client.hmget(self.keys.schedules, list(names))
        return {name: None if v is None else int(v) for name, v in zip(names, values, strict=True)}

    def claim(self, fired: Sequence[TriggerEvent], now_ms: int) -> list[ClaimOutcome]:
        """Offer a schedule's ``trigger.fired`` events (each names its schedule, tick and
        run; ascending ticks per schedule) in one round trip; returns one outcome each.
        Each won tick's start is owed until ``started`` (another pump's after REDO_MS)."""
        if not fired:
            return []
        items: list[Any] = []
        for event in fired:
            field = last_field("schedule", event.name, event.flow or "")
            items += [event.name, str(event.tick_ms), event.run_id, field, event.dump()]
        named: dict[str, Any] = self._keys | {"last": self.keys.trigger_last}
        named |= {"now_ms": now_ms, "redo_ms": REDO_MS}
        named |= {"maxlen": self.history_maxlen, "items": items}
        return [_OUTCOMES[int(code)] for code in CLAIM_TICKS.run(self.client, **named)]

    def started(self, owed: OwedStart) -> None:
        """Confirm that ``owed``'s run started: no pump starts it again."""
        self.client.zrem(self.keys.schedules_starting, owed.member)

    def unstarted(self, names: Collection[str], now_ms: int) -> list[OwedStart]:
        """Owed starts of schedules in ``names`` past their redo time, taken for this
        caller (another may take them again REDO_MS later if it is not confirmed)."""
        key = self.keys.schedules_starting
        due = self.client.zrangebyscore(key, "-inf", now_ms, start=0, num=RETAKE_LIMIT)
        mine = [member for member in map(OwedStart.of, due) if member.name in names]
        if not mine:
            return []
        members = [owed.member for owed in mine]
        named = {"starting": key, "now_ms": now_ms, "redo_ms": REDO_MS, "members": members}
        return [OwedStart.of(member) for member in RETAKE_STARTS.run(self.client, **named)]

    def pause(self, name: str, at_ms: int) -> bool:
        """Pause ``name``; False if it was paused already (nothing written then)."""
        return self._pause(name, True, at_ms)

    def resume(self, name: str, at_ms: int) -> bool:
        """Resume ``name`` from ``at_ms`` (no tick up to then fires); False if it ran."""
        return self._pause(name, False, at_ms)

    def _pause(self, name: str, pause: bool, at_ms: int) -> bool:
        event = TriggerEvent(
            kind="trigger.paused" if pause else "trigger.resumed",
            trigger="schedule",
            name=name,
            ts=ms_to_datetime(at_ms),
        )
        named: dict[str, Any] = self._keys | {"name": name, "at_ms": at_ms, "event": event.dump()}
        named |= {"pause": "1" if pause else "0", "maxlen": self.history_maxlen}
        return bool(PAUSE_SCHEDULE.run(self.client, **named))

    def states(self) -> dict[str, ScheduleState]:
        """Every schedule Redis knows of (fired, paused or resumed once), by name."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.schedules)
            pipe.hgetall(self.keys.schedules_paused)
            marks, paused = pipe.execute()
        states: dict[str, ScheduleState] = {}
        for name, value in marks.items():
            states[as_text(name)] = ScheduleState(mark_ms=int(value))
        for name, value in paused.items():
            state = states.get(as_text(name), ScheduleState())
            states[as_text(name)] = state.model_copy(update={"paused_ms": int(value)})
        return states
