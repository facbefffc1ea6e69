"""What runs next: starting runs, emitting events, finishing steps, enqueueing steps.

Every decision goes through one atomic ledger call, so with any number of workers a
step is enqueued once per run and a run gets exactly one terminal event.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from flowqueue.errors import FlowqueueError, InvalidInput, NonJsonPayload
from flowqueue.events import Event, EventKind, NewEvent
from flowqueue.flows import FlowGraph, StepDef
from flowqueue.ids import new_run_id
from flowqueue.ledger.base import StepFinish
from flowqueue.task import HEADER, StepHeader
from flowqueue.validation import check_json

if TYPE_CHECKING:
    from flowqueue.extension import Flowqueue

TRACEBACK_LIMIT = 8_000  # characters of traceback kept in step.failed


def step_task_id(run_id: str, step: str) -> str:
    """The Celery task id of a step instance: deterministic, so Flower shows run/step."""
    return f"{run_id}:{step}"


def error_info(exc: BaseException) -> dict[str, Any]:
    text = "".join(traceback.format_exception(exc))
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": text[-TRACEBACK_LIMIT:],
    }


def to_jsonable(value: Any, what: str) -> Any:
    """A step's result or payload as JSON data (pydantic models are dumped)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    check_json(value, what)
    return value


def validate_run_input(graph: FlowGraph, value: Any) -> Any:
    """Check a run's input against every entry step's model before anything is written."""
    try:
        value = to_jsonable(value, "input")
    except NonJsonPayload as exc:
        raise InvalidInput(str(exc)) from None
    for entry in graph.entry_steps:
        if entry.input_model is not None:
            try:
                entry.input_model.model_validate(value)
            except ValidationError as exc:
                raise InvalidInput(
                    f"input for flow {graph.name!r} does not fit {entry.input_model.__name__} "
                    f"(entry step {entry.name!r}): {exc}"
                ) from None
    return value


class Orchestrator:
    def __init__(self, fq: Flowqueue) -> None:
        self.fq = fq

    def start_run(self, flow: str, input: Any = None, *, run_id: str | None = None) -> str:
        graph = self.fq.registry.flow(flow)
        value = validate_run_input(graph, input)
        run_id = run_id or new_run_id()
        started = NewEvent(
            kind=EventKind.FLOW_STARTED, run_id=run_id, flow=flow, data={"input": value}
        )
        entries = graph.entry_steps
        if self.fq.ledger.start_run(started, [s.name for s in entries]) is None:
            raise FlowqueueError(f"run {run_id!r} exists already; start it with a new id.")
        for entry in entries:
            self.enqueue(run_id, flow, entry, value)
        return run_id

    def emit(self, header: StepHeader, attempt: int, name: str, payload: Any) -> Event:
        graph = self.fq.registry.flow(header.flow)
        step = graph.step(header.step)
        if step.emits and name not in step.emits:
            raise FlowqueueError(
                f"step {step.name!r} emitted {name!r} but declares emits={list(step.emits)}; "
                "add it there (the flow graph and the dashboard are drawn from emits)."
            )
        payload = to_jsonable(payload, f"payload of {name!r}")
        event = NewEvent(
            kind=EventKind.EMIT,
            run_id=header.run_id,
            flow=header.flow,
            step=header.step,
            data={"name": name, "payload": payload},
            meta={"attempt": attempt},
        )
        # A retried emitter re-sends steps it claimed before, in case it died first.
        stored, claims = self.fq.ledger.emit(
            event, payload, graph.candidates(name), republish=attempt > 1
        )
        for claim in claims:
            self.enqueue(header.run_id, header.flow, graph.step(claim.step), claim.inputs)
        return stored

    def complete_step(
        self, header: StepHeader, attempt: int, result: Any, duration_ms: int
    ) -> StepFinish:
        event = self._step_event(
            header, EventKind.STEP_COMPLETED, attempt, result=result, duration_ms=duration_ms
        )
        terminal = self._run_event(header, EventKind.FLOW_COMPLETED, duration_ms="$duration_ms")
        return self.fq.ledger.finish_step(event, "completed", terminal)

    def fail_step(
        self, header: StepHeader, attempt: int, exc: BaseException, duration_ms: int
    ) -> StepFinish:
        error = error_info(exc)
        event = self._step_event(
            header,
            EventKind.STEP_FAILED,
            attempt,
            error=error,
            attempt=attempt,
            will_retry=False,
            duration_ms=duration_ms,
        )
        summary = {"type": error["type"], "message": error["message"]}
        terminal = self._run_event(header, EventKind.FLOW_FAILED, error=summary, step=header.step)
        return self.fq.ledger.finish_step(event, "failed", terminal)

    def enqueue(
        self, run_id: str, flow: str, step: StepDef, arg: Any, countdown: float | None = None
    ) -> None:
        task = self.fq.app.tasks[step.task_name]
        header = StepHeader(run_id=run_id, flow=flow, step=step.name)
        task.apply_async(
            args=[arg],
            task_id=step_task_id(run_id, step.name),
            headers={HEADER: header.model_dump()},
            countdown=countdown,
        )

    @staticmethod
    def _step_event(header: StepHeader, kind: str, step_attempt: int, **data: Any) -> NewEvent:
        return NewEvent(
            kind=kind,
            run_id=header.run_id,
            flow=header.flow,
            step=header.step,
            data=data,
            meta={"attempt": step_attempt},
        )

    @staticmethod
    def _run_event(header: StepHeader, kind: str, **data: Any) -> NewEvent:
        return NewEvent(kind=kind, run_id=header.run_id, flow=header.flow, data=data)
