"""Schedules in Redis: the atomic claim of a tick (``claim_ticks.lua``), pause and resume
(``pause_schedule.lua``), and reading their state and events back.

Each schedule has a mark in ``Keys.schedules``: the ms its next tick must be later than.
A claim wins a tick only past the mark and moves the mark to it, so any number of pumps
offering the same ticks fire each once, and a tick older than one already fired never
fires. Pauses are kept in ``Keys.schedules_paused``; every firing, pause and resume is
also a ``ScheduleEvent`` in the capped stream ``Keys.schedule_events``, the history the
API and CLI show (trimmed by length: the state lives in the two hashes, never only there).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import redis
from pydantic import BaseModel, ValidationError

from flowqueue.backend.redis.keys import Keys
from flowqueue.backend.redis.scripts import CLAIM_TICKS, PAUSE_SCHEDULE
from flowqueue.model.ids import ms_to_datetime
from flowqueue.model.schedules import ScheduleEvent, ScheduleEventKind

log = logging.getLogger(__name__)

EVENT_FIELD = "event"  # the one field of a stream entry: the ScheduleEvent JSON
HISTORY_MAXLEN = 10_000  # entries the event stream keeps (about, ``MAXLEN ~``)
ClaimOutcome = Literal["won", "fired", "paused"]
Entry = tuple[Any, Any]  # (stream id, fields) as redis-py returns them
_OUTCOMES: dict[int, ClaimOutcome] = {1: "won", 0: "fired", 2: "paused"}


class ScheduleState(BaseModel):
    """What Redis holds for one schedule."""

    mark_ms: int | None = None  # its next tick must be later (None: it never fired)
    paused_ms: int | None = None  # when it was paused (None: it runs)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
            "history": keys.schedule_events,
        }

    def marks(self, names: Sequence[str]) -> dict[str, int | None]:
        """Each schedule's mark: the ms its next tick must be later than (None: never fired)."""
        if not names:
            return {}
        values = self.client.hmget(self.keys.schedules, list(names))
        return {name: None if v is None else int(v) for name, v in zip(names, values, strict=True)}

    def claim(self, fired: Sequence[ScheduleEvent]) -> list[ClaimOutcome]:
        """Offer ``schedule.fired`` events (each names its schedule and tick; ascending
        ticks per schedule) in one round trip; returns one outcome each."""
        if not fired:
            return []
        items: list[Any] = []
        for event in fired:
            items += [event.schedule, str(event.tick_ms), event.dump()]
        named = self._keys | {"maxlen": self.history_maxlen, "items": items}
        return [_OUTCOMES[int(code)] for code in CLAIM_TICKS.run(self.client, **named)]

    def pause(self, name: str, at_ms: int) -> bool:
        """Pause ``name``; False if it was paused already (nothing written then)."""
        return self._pause(name, "schedule.paused", at_ms)

    def resume(self, name: str, at_ms: int) -> bool:
        """Resume ``name`` from ``at_ms`` (no tick up to then fires); False if it ran."""
        return self._pause(name, "schedule.resumed", at_ms)

    def _pause(self, name: str, kind: ScheduleEventKind, at_ms: int) -> bool:
        event = ScheduleEvent(kind=kind, schedule=name, ts=ms_to_datetime(at_ms))
        named = self._keys | {"name": name, "at_ms": at_ms, "event": event.dump()}
        named |= {"pause": "1" if kind == "schedule.paused" else "0"}
        return bool(PAUSE_SCHEDULE.run(self.client, **named, maxlen=self.history_maxlen))

    def states(self) -> dict[str, ScheduleState]:
        """Every schedule Redis knows of (fired, paused or resumed once), by name."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.schedules)
            pipe.hgetall(self.keys.schedules_paused)
            marks, paused = pipe.execute()
        states: dict[str, ScheduleState] = {}
        for name, value in marks.items():
            states[_text(name)] = ScheduleState(mark_ms=int(value))
        for name, value in paused.items():
            state = states.get(_text(name), ScheduleState())
            states[_text(name)] = state.model_copy(update={"paused_ms": int(value)})
        return states

    def events(
        self, after: str = "-", count: int = 100, names: Iterable[str] | None = None
    ) -> list[tuple[str, ScheduleEvent]]:
        """Up to ``count`` events after stream id ``after`` (exclusive, ``-`` from the
        first), oldest first, of ``names`` only when given; (stream id, event) each.
        Undecodable entries are skipped (one bad writer must not hide the others)."""
        wanted = None if names is None else set(names)
        found: list[tuple[str, ScheduleEvent]] = []
        start = after if after == "-" else f"({after}"
        while len(found) < count:
            page: list[Entry] = (
                self.client.xrange(self.keys.schedule_events, start, "+", count=count) or []
            )
            for entry_id, fields in page:
                raw = (fields or {}).get(EVENT_FIELD.encode(), b"")
                try:
                    event = ScheduleEvent.model_validate_json(raw)
                except ValidationError as exc:
                    log.warning("skipping schedule event %s: %s", _text(entry_id), exc)
                    continue
                if wanted is None or event.schedule in wanted:
                    found.append((_text(entry_id), event))
            if len(page) < count:
                break
            start = f"({_text(page[-1][0])}"
        return found[:count]
