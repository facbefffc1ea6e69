"""Events -> ``RunState``: the one place that gives meaning to a run's log.

``apply(state, event)`` is pure (the input state is never modified) and incremental, so
live views can fold events as they arrive; ``reduce(events)`` folds a whole log with the
same step function on a private accumulator, so both always agree. ``state_at`` replays a
prefix of the log: the run as it was at an event id or a moment (time travel).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import StrEnum
from itertools import takewhile
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from flowqueue.errors import InvalidEvent
from flowqueue.model.events import AWAIT_KINDS, TERMINAL_KINDS, UNREADABLE, Event, EventKind
from flowqueue.model.ids import datetime_to_ms, parse_stream_id, stream_id_ms


class RunStatus(StrEnum):
    PENDING = "pending"  # no flow.started seen yet
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    QUEUED = "queued"  # sent (first, resumed or retried), not started yet
    RUNNING = "running"
    AWAITING = "awaiting"
    RETRYING = "retrying"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


_RUN_TERMINAL = {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}
_STEP_TERMINAL = {StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.CANCELLED}
_AWAIT_FIELDS = ("until", "name", "match", "trigger_id", "info", "timeout_at")


class ErrorInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str = "Error"
    message: str = ""
    traceback: str | None = None


class AwaitInfo(BaseModel):
    """What an awaiting step waits for."""

    model_config = ConfigDict(frozen=True)

    key: str
    kind: str  # time | event | trigger
    step: str | None
    since: datetime
    until: datetime | str | None = None  # time awaits
    name: str | None = None  # event awaits
    match: dict[str, Any] | None = None
    trigger_id: str | None = None  # trigger awaits
    info: dict[str, Any] | None = None
    timeout_at: datetime | str | None = None


class _RunEntry(BaseModel):
    """What a log line and an emission share: the event that recorded it."""

    model_config = ConfigDict(frozen=True)

    id: str
    ts: datetime
    step: str | None


class LogEntry(_RunEntry):
    level: str
    msg: str
    fields: dict[str, Any] = {}


class EmittedEvent(_RunEntry):
    name: str
    payload: Any = None


class StepState(BaseModel):
    name: str
    status: StepStatus = StepStatus.QUEUED
    attempts: int = 0
    started_at: datetime | None = None  # start of the current attempt
    ended_at: datetime | None = None
    duration_ms: int | None = None
    result: Any = None
    error: ErrorInfo | None = None
    will_retry: bool = False
    next_retry_at: datetime | str | None = None
    task_id: str | None = None
    worker: str | None = None
    awaiting: AwaitInfo | None = None


class RunState(BaseModel):
    run_id: str = ""
    flow: str = ""
    status: RunStatus = RunStatus.PENDING
    input: Any = None
    result: Any = None
    error: ErrorInfo | None = None
    cancel_reason: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    steps: dict[str, StepState] = {}
    logs: list[LogEntry] = []
    state: dict[str, Any] = {}
    emitted: list[EmittedEvent] = []
    awaits: dict[str, AwaitInfo] = {}  # pending awaits by await key
    last_event_id: str | None = None
    event_count: int = 0
    unreadable: list[str] = []  # ids of records no reader could decode (skipped)
    rerun_of: str | None = None  # the run whose input this one was started again with
    reruns: list[str] = []  # the runs started again with this one's input, oldest first

    @property
    def terminal(self) -> bool:
        return self.status in _RUN_TERMINAL


def apply(state: RunState | None, event: Event) -> RunState:
    """The state after ``event``; ``state`` (``None`` = before the first event) is untouched."""
    new = RunState() if state is None else _copy(state)
    _step(new, event)
    return new


def reduce(events: Iterable[Event]) -> RunState:
    state = RunState()
    for event in events:
        _step(state, event)
    return state


def state_at(events: Iterable[Event], at: str | datetime) -> RunState:
    """The run as it was just after event id ``at``, or at moment ``at`` (inclusive)."""
    if isinstance(at, str):
        limit = parse_stream_id(at)
        return reduce(takewhile(lambda e: parse_stream_id(e.id) <= limit, events))
    limit_ms = datetime_to_ms(at)
    return reduce(takewhile(lambda e: stream_id_ms(e.id) <= limit_ms, events))


def state_after(events: Sequence[Event], at: str) -> RunState:
    """Time travel: the run as it was just after event id ``at`` (``events``: its whole
    log). ``InvalidEvent`` when ``at`` comes before the run's first event: there was no
    run then to show."""
    if events and parse_stream_id(at) < parse_stream_id(events[0].id):
        raise InvalidEvent(
            f"at={at} comes before the run's first event ({events[0].id}); pass one of its "
            "event ids."
        )
    return state_at(events, at)


def _copy(state: RunState) -> RunState:
    """Copy every container the step function may change; values are shared (never mutated)."""
    return state.model_copy(
        update={
            "steps": {name: step.model_copy() for name, step in state.steps.items()},
            "logs": list(state.logs),
            "state": dict(state.state),
            "emitted": list(state.emitted),
            "awaits": dict(state.awaits),
            "unreadable": list(state.unreadable),
            "reruns": list(state.reruns),
        }
    )


def _ms_between(start: datetime | None, end_id: str) -> int | None:
    return None if start is None else stream_id_ms(end_id) - datetime_to_ms(start)


def _error(raw: Any) -> ErrorInfo:
    if isinstance(raw, dict):
        return ErrorInfo(
            type=str(raw.get("type", "Error")),
            message=str(raw.get("message", "")),
            traceback=raw.get("traceback"),
        )
    return ErrorInfo(message="" if raw is None else str(raw))


def _step(state: RunState, event: Event) -> None:
    """Fold one event into ``state`` in place (callers own ``state``)."""
    kind, data = event.kind, event.data
    state.run_id = state.run_id or event.run_id
    state.flow = state.flow or event.flow
    state.last_event_id = event.id
    state.event_count += 1
    step = _step_state(state, event.step) if event.step else None

    if kind == EventKind.FLOW_STARTED:
        if state.status is RunStatus.PENDING:
            state.status = RunStatus.RUNNING
        state.started_at = state.started_at or event.ts
        state.input = data.get("input")
        rerun_of = data.get("rerun_of")
        state.rerun_of = rerun_of if isinstance(rerun_of, str) else None
    elif kind == EventKind.FLOW_RERUN:
        if isinstance(data.get("rerun"), str):
            state.reruns.append(data["rerun"])
    elif kind == EventKind.FLOW_RETRIED:
        _retried(state, data.get("steps"))
    elif kind in TERMINAL_KINDS:
        if state.terminal:
            return  # the first terminal event decides
        state.ended_at = event.ts
        state.duration_ms = _ms_between(state.started_at, event.id)
        if kind == EventKind.FLOW_COMPLETED:
            state.status = RunStatus.COMPLETED
            state.result = data.get("result")
        elif kind == EventKind.FLOW_FAILED:
            state.status = RunStatus.FAILED
            state.error = _error(data.get("error"))
        else:
            state.status = RunStatus.CANCELLED
            state.cancel_reason = data.get("reason")
            state.awaits.clear()
            for other in state.steps.values():
                if other.status not in _STEP_TERMINAL:
                    other.status, other.awaiting = StepStatus.CANCELLED, None
    elif kind == EventKind.STEP_STARTED and step is not None:
        if state.status is RunStatus.PENDING:
            state.status = RunStatus.RUNNING
        attempt = data.get("attempt")
        step.attempts = attempt if isinstance(attempt, int) else step.attempts + 1
        step.status = StepStatus.RUNNING
        step.started_at, step.ended_at, step.duration_ms = event.ts, None, None
        step.error, step.will_retry, step.next_retry_at = None, False, None
        step.task_id = data.get("task_id", step.task_id)
        step.worker = data.get("worker", step.worker)
    elif kind == EventKind.STEP_COMPLETED and step is not None:
        step.status = StepStatus.COMPLETED
        step.result = data.get("result")
        step.ended_at = event.ts
        step.duration_ms = data.get("duration_ms", _ms_between(step.started_at, event.id))
    elif kind == EventKind.STEP_FAILED and step is not None:
        step.will_retry = bool(data.get("will_retry", False))
        step.status = StepStatus.RETRYING if step.will_retry else StepStatus.FAILED
        step.error = _error(data.get("error"))
        step.next_retry_at = data.get("next_retry_at")
        step.ended_at = event.ts
        step.duration_ms = data.get("duration_ms", _ms_between(step.started_at, event.id))
    elif kind == EventKind.STEP_RETRY and step is not None:
        step.status = StepStatus.RETRYING
    elif kind in AWAIT_KINDS and step is not None:
        info = AwaitInfo(
            key=str(data.get("key", event.id)),
            kind=kind.removeprefix("step.await."),  # time | event | trigger
            step=event.step,
            since=event.ts,
            **{name: data.get(name) for name in _AWAIT_FIELDS},
        )
        state.awaits[info.key] = info
        step.status, step.awaiting = StepStatus.AWAITING, info
    elif kind in (EventKind.STEP_RESUMED, EventKind.STEP_AWAIT_TIMEOUT) and step is not None:
        state.awaits.pop(str(data.get("key")), None)
        step.status, step.awaiting = StepStatus.QUEUED, None
    elif kind == EventKind.LOG:
        level, msg = str(data.get("level", "info")), str(data.get("msg", ""))
        fields = data.get("fields") or {}
        state.logs.append(_entry(LogEntry, event, level=level, msg=msg, fields=fields))
    elif kind == EventKind.EMIT:
        name, payload = str(data.get("name", "")), data.get("payload")
        state.emitted.append(_entry(EmittedEvent, event, name=name, payload=payload))
    elif kind == EventKind.STATE_SET:
        state.state[str(data.get("key"))] = data.get("value")
    elif kind == EventKind.STATE_DELETE:
        state.state.pop(str(data.get("key")), None)
    elif kind == UNREADABLE:
        state.unreadable.append(event.id)


def _retried(state: RunState, steps: Any) -> None:
    """A failed run running again: its end is undone and ``steps`` are queued once more
    (their attempts go on counting); its next terminal event decides again."""
    state.status = RunStatus.RUNNING
    state.ended_at = state.duration_ms = state.error = None
    names = [name for name in steps if isinstance(name, str)] if isinstance(steps, list) else []
    for name in names:
        step = _step_state(state, name)
        step.status, step.awaiting, step.error = StepStatus.QUEUED, None, None
        step.ended_at = step.duration_ms = step.next_retry_at = None
        step.will_retry = False
    for key, info in list(state.awaits.items()):
        if info.step in names:
            del state.awaits[key]


def _step_state(state: RunState, name: str) -> StepState:
    step = state.steps.get(name)
    if step is None:
        step = state.steps[name] = StepState(name=name)
    return step


M = TypeVar("M", bound=BaseModel)


def _entry(model: type[M], event: Event, **fields: Any) -> M:
    """A log line or an emission of the run, unvalidated (the event was checked)."""
    return model.model_construct(id=event.id, ts=event.ts, step=event.step, **fields)
