"""The run coordinator: the atomic step transitions that orchestration is built on.

Each operation appends its events and updates the run's step table in one atomic step,
so concurrent workers agree on who enqueues a step (exactly once), which delivery of a
step runs it, and which finish ends the run (exactly one terminal event).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from flowqueue.model.awaits import AwaitOutcome, AwaitRecord, Match
from flowqueue.model.events import Event, NewEvent
from flowqueue.model.statuses import Outcome


@dataclass(frozen=True)
class StepStart:
    """What ``begin_step`` decided for one delivery of a step.

    ``run``: this delivery runs it (``attempt`` counts from 1; a resumed step keeps its
    attempt). ``done``: it finished already (a duplicate delivery). ``ended``: the run is
    over. ``busy``: another delivery holds a live lease for ``busy_ms`` more. ``wait``: the
    step waits for a timer and this delivery is not it. ``stale``: this delivery's timer
    fired already, or lost the race to another resolution.
    """

    decision: Literal["run", "done", "ended", "busy", "wait", "stale"]
    attempt: int = 0
    busy_ms: int = 0


@dataclass(frozen=True)
class Claim:
    """A step this caller won the right to enqueue, with its inputs by event name."""

    step: str
    inputs: dict[str, Any] = field(default_factory=dict)


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


class RunCoordinator(Protocol):
    def start_run(self, started: NewEvent, entry_steps: Sequence[str]) -> Event | None:
        """Append flow.started and queue the entry steps; None if the run id exists."""
        ...

    def begin_step(
        self,
        started: NewEvent,
        lease_ms: int,
        *,
        timer: str = "",
        on_claim: NewEvent | None = None,
    ) -> StepStart:
        """Claim a delivery of ``started.step``; appends step.started when it runs.

        ``started.data["attempt"]`` / ``meta["attempt"]`` hold ``"$attempt"``; the coordinator
        writes the real attempt number there. A step waiting for a retry or awaiting
        starts only for the delivery whose ``timer`` it claims, which also appends
        ``on_claim`` (step.retry with "$attempt"; step.resumed with "$result", filled with
        the waking event's payload; step.await.timeout) and resolves the await.
        """
        ...

    def renew_lease(self, run_id: str, step: str, lease_ms: int) -> bool: ...

    def emit(
        self,
        event: NewEvent,
        payload: Any,
        candidates: Sequence[Candidate],
        *,
        republish: bool = False,
    ) -> Emitted:
        """Append an emit event, claim every candidate it makes ready (once), and wake the
        event waits it matches in any run."""
        ...

    def signal(self, name: str, payload: Any) -> tuple[str, list[str]]:
        """An event from outside any run: (its signal id, the wake timers it set)."""
        ...

    def suspend(self, suspension: Suspension, *, run_id: str, flow: str, step: str) -> AwaitOutcome:
        """Record a pending await, park the step as awaiting and set its timer, waiter or
        trigger; an event wait first looks through emissions since the step began waiting."""
        ...

    def record_once(self, key: str, record: AwaitRecord, event: NewEvent) -> AwaitRecord:
        """Keep a ``once`` block's result (the first one recorded wins)."""
        ...

    def await_records(self, run_id: str, step: str) -> dict[str, AwaitRecord]:
        """The awaits and ``once`` blocks ``step`` has reached, by key."""
        ...

    def read_trigger(self, trigger_id: str) -> TriggerInfo | None: ...

    def resume(
        self, trigger_id: str, info: TriggerInfo, payload: Any, resumed: NewEvent, timer: str
    ) -> ResumeResult:
        """The trigger's one claim: resolve its await with ``payload`` and park ``timer``
        (which the caller sends) to run the step again."""
        ...

    def cancel(self, run_id: str, flow: str, cancelled: NewEvent | None) -> Cancelled:
        """Append ``cancelled`` (flow.cancelled) and stop everything the run still holds:
        steps, timers, waiters, triggers. With ``None``, only release what an ended run
        holds."""
        ...

    def finish_step(
        self,
        event: NewEvent,
        outcome: Outcome,
        terminal: NewEvent | None,
        *,
        timer: str = "",
        due_ms: int = 0,
        arg: Any = None,
    ) -> StepFinish:
        """Record a step's end once; append ``terminal`` if this ends the run.

        A flow.completed ``terminal`` holds ``"$duration_ms"`` for the coordinator to fill in.
        ``retry`` parks the step until the durable ``timer`` falls due at ``due_ms``,
        keeping ``arg`` (its input) for the retried delivery.
        """
        ...

    def take_due(self, horizon_ms: int, limit: int, grace_ms: int) -> list[tuple[str, int]]:
        """Timers due within ``horizon_ms`` (and handed ones never claimed), moved to the
        handed set: ``[(timer, due ms)]``."""
        ...

    def step_arg(self, run_id: str, step: str) -> Any:
        """The input kept for a step that waits for a retry."""
        ...

    def step_statuses(self, run_id: str) -> dict[str, str]: ...
