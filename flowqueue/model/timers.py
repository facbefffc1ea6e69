"""Durable timers as data (``TimerSpec``) and the clock that scores them (``now_ms``)."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict

TimerKind = Literal["retry", "wake", "timeout", "event", "resume"]


class TimerSpec(BaseModel):
    """What a timer does when it falls due; its JSON is the sorted-set member.

    Every timer sends its step again; the delivery's claim in the coordinator decides what
    that means: ``retry`` starts the next attempt, ``wake`` ends a sleep, ``timeout``
    times out an await, ``event`` resumes an event wait with the event's payload, and
    ``resume`` runs a step whose trigger was resumed.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    kind: TimerKind
    run_id: str
    flow: str
    step: str
    attempt: int = 0  # retry: the attempt the timer starts
    key: str = ""  # the await it ends
    due_ms: int = 0  # wake / timeout: when it falls due
    name: str = ""  # timeout of an event wait: the event name (its waiter is removed)
    trigger: str = ""  # timeout of a trigger wait: the trigger (it expires)
    signal: str = ""  # event wake: id of the emission in the signal stream

    def member(self) -> str:
        return self.model_dump_json(exclude_defaults=True)


def now_ms() -> int:
    return time.time_ns() // 1_000_000
