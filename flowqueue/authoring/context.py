"""``FlowContext``: what a step gets as ``ctx`` — its run, state, log, ``emit`` and the
durable awaits (``sleep``, ``wait_for_event``, ``wait_for_trigger``, ``once``)."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol, TypeVar

from flowqueue.backend.store import EventStore
from flowqueue.model.awaits import Match, Seconds, ms_of, seconds_of
from flowqueue.model.events import Event, EventKind
from flowqueue.model.header import StepHeader
from flowqueue.model.reducer import RunState, apply
from flowqueue.model.timers import now_ms
from flowqueue.model.validation import MAX_JSON_DEPTH, check_json

_current: contextvars.ContextVar[FlowContext | None] = contextvars.ContextVar(
    "flowqueue_step", default=None
)
T = TypeVar("T")


class Awaits(Protocol):
    """The durable awaits of one execution of a step (the runtime's ``StepAwaits``)."""

    @property
    def replaying(self) -> bool: ...

    def replayed_emit(self, name: str) -> Event | None: ...

    def sleep_until(self, due_ms: int) -> None: ...

    def wait_for_event(self, name: str, match: Match | None, timeout_ms: int | None) -> Any: ...

    def wait_for_trigger(
        self,
        timeout_ms: int | None,
        info: dict[str, Any] | None,
        on_trigger: Callable[[str], None] | None,
    ) -> Any: ...

    def once(self, name: str, fn: Callable[[], T]) -> Any: ...


def current_context() -> FlowContext | None:
    """The step running in this thread (or task), if any."""
    return _current.get()


@contextmanager
def bound(ctx: FlowContext) -> Iterator[FlowContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


class FlowContext:
    """Handed to every step as its first argument."""

    def __init__(
        self,
        header: StepHeader,
        attempt: int,
        input: Any,
        task_id: str | None,
        *,
        store: EventStore,
        emit: Callable[[str, Any], Event],
        awaits: Awaits,
        claim: Callable[[], int] | None = None,
    ) -> None:
        self._store = store
        self._claim_step = claim  # a deferred claim is made before the first write
        self._emit = emit  # routes an emission to the steps and waits it makes ready
        self._header = header
        self.run_id = header.run_id
        self.flow = header.flow
        self.step = header.step
        self.attempt = attempt
        self.input = input
        self.task_id = task_id
        self.awaited: Any = None  # what a declared await_before returned
        self._awaits = awaits
        self.state = SharedState(self)
        self.log = StepLog(self)

    def _claim(self) -> None:
        """Before a write: the step's claim, if it was deferred (the attempt it gives)."""
        if self._claim_step is not None:
            self.attempt = self._claim_step()

    @property
    def replaying(self) -> bool:
        """True while a resumed step re-runs code it ran before its last recorded await
        (its emits, log lines and state writes are not repeated meanwhile)."""
        return self._awaits.replaying

    def emit(self, name: str, payload: Any = None) -> Event:
        """Emit a named event: steps of this run subscribed to it start when ready, and
        event waits (in any run) whose match it fits resume."""
        earlier = self._awaits.replayed_emit(name)
        if earlier is not None:
            return earlier
        return self._emit(name, payload)

    # -- durable awaits: the step's task ends here and the step runs again later -------

    def sleep(self, duration: Seconds) -> None:
        """Pause for ``duration`` (seconds or a timedelta) without holding a worker."""
        self._claim()
        self._awaits.sleep_until(now_ms() + round(seconds_of(duration, "sleep") * 1000))

    def sleep_until(self, moment: datetime) -> None:
        """Pause until ``moment`` (timezone-aware); a moment passed resumes at once."""
        self._claim()
        self._awaits.sleep_until(ms_of(moment))

    def wait_for_event(
        self, name: str, *, match: Match | None = None, timeout: Seconds | None = None
    ) -> Any:
        """Pause until event ``name`` is emitted (by ``ctx.emit`` in any run or by
        ``flowqueue.emit``) with a payload whose top-level fields equal ``match``; returns
        the payload. Emissions since this step began waiting count too. Raises
        ``AwaitTimeout`` after ``timeout``."""
        timeout_ms = None if timeout is None else round(seconds_of(timeout, "timeout") * 1000)
        self._claim()
        return self._awaits.wait_for_event(name, match, timeout_ms)

    def wait_for_trigger(
        self,
        *,
        timeout: Seconds | None = None,
        info: dict[str, Any] | None = None,
        on_trigger: Callable[[str], None] | None = None,
    ) -> Any:
        """Pause until ``flowqueue.resume(trigger_id, payload)``; returns the payload.

        The unguessable, single-use trigger id is in the step.await.trigger event (with
        ``info``) before the step suspends, and ``on_trigger(trigger_id)`` is called then,
        once, to send it to a person or a webhook sender. ``AwaitTimeout`` after
        ``timeout``."""
        timeout_ms = None if timeout is None else round(seconds_of(timeout, "timeout") * 1000)
        self._claim()
        return self._awaits.wait_for_trigger(timeout_ms, info, on_trigger)

    def once(self, name: str, fn: Callable[[], T]) -> Any:
        """Run ``fn`` once per step instance and record its result (as JSON); a replay
        returns the recorded result without running ``fn``. Wrap side effects that come
        before an await in it."""
        self._claim()
        return self._awaits.once(name, fn)

    def append(self, kind: str, **data: Any) -> Event:
        """Append a step-scoped event of ``kind`` to the run's log."""
        self._claim()
        return self._store.append(self._header.event(kind, self.attempt, **data))

    def read_state(self, since: RunState | None) -> RunState:
        """``since`` brought up to date with the run's log."""
        after = since.last_event_id if since else None
        state = since or RunState()
        for event in self._store.read(self.run_id, after=after):
            state = apply(state, event)
        return state


class SharedState:
    """Per-run key/value state: writes are state.set / state.delete events; reads fold
    the log (incrementally), so every step of the run sees the same state."""

    def __init__(self, ctx: FlowContext) -> None:
        self._ctx = ctx
        self._seen: RunState | None = None

    def _now(self) -> dict[str, Any]:
        self._seen = self._ctx.read_state(self._seen)
        return self._seen.state

    def get(self, key: str, default: Any = None) -> Any:
        return self._now().get(key, default)

    def all(self) -> dict[str, Any]:
        return dict(self._now())

    def set(self, key: str, value: Any) -> None:
        check_json(value, f"state {key!r}")
        if not self._ctx.replaying:
            self._ctx.append(EventKind.STATE_SET, key=key, value=value)

    def delete(self, key: str) -> None:
        if not self._ctx.replaying:
            self._ctx.append(EventKind.STATE_DELETE, key=key)


class StepLog:
    """``ctx.log.info("msg", **fields)``: a log event in the run, also sent to the
    ``flowqueue.step`` logger (marked so the run-log handler does not record it twice)."""

    def __init__(self, ctx: FlowContext) -> None:
        self._ctx = ctx
        self._logger = logging.getLogger(f"flowqueue.step.{ctx.flow}.{ctx.step}")

    def _write(self, level: str, msg: str, fields: dict[str, Any]) -> None:
        if self._ctx.replaying:
            return
        check_json(fields, "log fields", MAX_JSON_DEPTH + 1)  # each field: the usual limit
        self._ctx.append(EventKind.LOG, level=level, msg=msg, fields=fields)
        self._logger.log(
            logging.getLevelNamesMapping()[level.upper()],
            "%s %s",
            msg,
            fields or "",
            extra={"flowqueue_recorded": True},
        )

    def debug(self, msg: str, **fields: Any) -> None:
        self._write("debug", msg, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._write("info", msg, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._write("warning", msg, fields)

    def error(self, msg: str, **fields: Any) -> None:
        self._write("error", msg, fields)
