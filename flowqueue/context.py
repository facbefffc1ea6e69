"""``FlowContext``: what a step gets as ``ctx`` — its run, state, log and ``emit``."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from flowqueue.events import Event, EventKind, NewEvent
from flowqueue.reducer import RunState, apply
from flowqueue.task import StepHeader

if TYPE_CHECKING:
    from flowqueue.extension import Flowqueue

_current: contextvars.ContextVar[FlowContext | None] = contextvars.ContextVar(
    "flowqueue_step", default=None
)
LEVELS = ("debug", "info", "warning", "error")


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
        self, fq: Flowqueue, header: StepHeader, attempt: int, input: Any, task_id: str | None
    ) -> None:
        self._fq = fq
        self._header = header
        self.run_id = header.run_id
        self.flow = header.flow
        self.step = header.step
        self.attempt = attempt
        self.input = input
        self.task_id = task_id
        self.state = SharedState(self)
        self.log = StepLog(self)

    def emit(self, name: str, payload: Any = None) -> Event:
        """Emit a named event in this run; steps subscribed to it start when ready."""
        return self._fq.orchestrator.emit(self._header, self.attempt, name, payload)

    def append(self, kind: str, **data: Any) -> Event:
        """Append a step-scoped event of ``kind`` to the run's log."""
        event = NewEvent(
            kind=kind,
            run_id=self.run_id,
            flow=self.flow,
            step=self.step,
            data=data,
            meta={"attempt": self.attempt},
        )
        return self._fq.store.append(event)

    def read_state(self, since: RunState | None) -> RunState:
        """``since`` brought up to date with the run's log."""
        after = since.last_event_id if since else None
        state = since or RunState()
        for event in self._fq.store.read(self.run_id, after=after):
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
        self._ctx.append(EventKind.STATE_SET, key=key, value=value)

    def delete(self, key: str) -> None:
        self._ctx.append(EventKind.STATE_DELETE, key=key)


class StepLog:
    """``ctx.log.info("msg", **fields)``: a log event in the run, also sent to the
    ``flowqueue.step`` logger (marked so the run-log handler does not record it twice)."""

    def __init__(self, ctx: FlowContext) -> None:
        self._ctx = ctx
        self._logger = logging.getLogger(f"flowqueue.step.{ctx.flow}.{ctx.step}")

    def _write(self, level: str, msg: str, fields: dict[str, Any]) -> None:
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
