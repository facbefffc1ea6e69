"""What the run coordinator answers (``backend/redis/coordinator.py`` holds the atomic
step transitions that orchestration is built on, one Lua script each).

Each operation appends its events and updates the run's step table in one atomic step,
so concurrent workers agree on who enqueues a step (exactly once), which delivery of a
step runs it, and which finish ends the run (exactly one terminal event).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from flowqueue.model.awaits import AwaitRecord, Match
from flowqueue.model.events import Event, NewEvent


@dataclass(frozen=True)
class StepStart:
    """What ``begin_step`` decided for one delivery of a step.

    ``run``: this delivery runs it (``attempt`` counts from 1; a resumed step keeps its
    attempt). ``done``: it finished already (a duplicate delivery). ``ended``: the run is
    over. ``busy``: another delivery holds a live lease for ``busy_ms`` more. ``wait``: the
    step waits for a timer and this delivery is not it. ``stale``: this delivery's timer
    fired already, or lost the race to another resolution. ``again``: a deferred claim
    (made with the step's end) found an earlier attempt, and wrote nothing.
    """

    decision: Literal["run", "done", "ended", "busy", "wait", "stale", "again"]
    attempt: int = 0
    busy_ms: int = 0


# One Redis write kombu's Redis transport makes to send a Celery message: ("lpush", (queue
# list, message)), ("publish", (channel, event)), ("pexpire", (queue list, ms)).
BrokerWrite = tuple[str, tuple[str | int, ...]]


@dataclass(frozen=True)
class Claim:
    """A step this caller won the right to enqueue, with its inputs by event name; or
    ``sent`` already, by the call that claimed it."""

    step: str
    inputs: dict[str, Any] = field(default_factory=dict)
    sent: bool = False


@dataclass(frozen=True)
class Candidate:
    """A step that subscribes to an emitted name, and all the names it waits for."""

    step: str
    subscribes: Sequence[str]


@dataclass(frozen=True)
class StepFinish:
    duplicate: bool
    terminal: bool = False


@dataclass(frozen=True)
class Emitted:
    """What ``emit`` did: the stored event, the steps it made ready, and the wake timers
    of the event waits (in any run) it matched, to be sent now."""

    event: Event
    claims: list[Claim]
    woken: list[str]


@dataclass(frozen=True)
class Suspension:
    """A step reaching an await: everything ``suspend`` records in one atomic step."""

    key: str
    record: AwaitRecord  # state "pending"; its timer, waiter and trigger keys
    event: NewEvent  # step.await.time / .event / .trigger
    arg: Any  # the step's input, kept for the resumed delivery
    due_ms: int = 0  # when record.timer falls due
    waiter: str = ""  # event wait: the waiter JSON
    match: Match | None = None  # event wait: the payload fields to match
    resumed: NewEvent | None = None  # event wait: step.resumed ("$result") if it resolves now
    trigger: str = ""  # trigger wait: the trigger JSON


@dataclass(frozen=True)
class TriggerInfo:
    run_id: str
    flow: str
    step: str
    key: str
    state: str


@dataclass(frozen=True)
class ResumeResult:
    """``ok`` (this call resumed the await; ``arg`` is the step's input), ``unknown``,
    ``used`` (``state``: resumed, timeout or cancelled) or ``ended`` (the run is over)."""

    outcome: Literal["ok", "unknown", "used", "ended"]
    state: str = ""
    arg: Any = None


@dataclass(frozen=True)
class Cancelled:
    """``cancelled``: this call cancelled the run (``queued``: steps sent but not begun);
    ``ended``: the run had ended already with ``status``."""

    outcome: Literal["cancelled", "ended"]
    status: str = ""
    queued: list[str] = field(default_factory=list)
