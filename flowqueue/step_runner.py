"""One delivery of a step: claim it, run it with a ``FlowContext``, record how it ended.

Celery delivers a step at least once; the ledger makes the effects count once: a
finished step's duplicate delivery returns without running, and a copy that arrives
while another delivery still holds the step's lease is put back for later.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from flowqueue import logcapture
from flowqueue.context import FlowContext, bound
from flowqueue.errors import InvalidInput
from flowqueue.events import EventKind, NewEvent
from flowqueue.extension import flowqueue_of
from flowqueue.flows import StepDef
from flowqueue.orchestrator import to_jsonable
from flowqueue.task import StepHeader

if TYPE_CHECKING:
    from flowqueue.task import FlowTask

log = logging.getLogger(__name__)


def run_step(task: FlowTask, header: StepHeader, args: tuple[Any, ...]) -> Any:
    fq = flowqueue_of(task.app)
    step = fq.registry.flow(header.flow).step(header.step)
    request = task.request
    started = NewEvent(
        kind=EventKind.STEP_STARTED,
        run_id=header.run_id,
        flow=header.flow,
        step=header.step,
        data={"attempt": "$attempt", "task_id": request.id, "worker": request.hostname},
        meta={"attempt": "$attempt"},
    )
    ledger = fq.ledger
    start = ledger.begin_step(started, fq.lease_ms)
    if start.decision in ("done", "ended"):
        log.info("skipping %s/%s: %s", header.run_id, header.step, start.decision)
        return None
    if start.decision == "busy":
        # Another delivery is running it: look again once its lease could have run out.
        log.info("%s/%s is running elsewhere; re-checking later", header.run_id, header.step)
        fq.orchestrator.enqueue(
            header.run_id, header.flow, step, args[0] if args else None, start.busy_ms / 1000
        )
        return None
    raw = args[0] if args else None
    ctx = FlowContext(fq, header, start.attempt, raw, request.id)
    logcapture.ensure_installed()
    began = time.perf_counter()
    with fq.leases.holding(ledger, header.run_id, header.step), bound(ctx):
        try:
            result = to_jsonable(task.run(ctx, _step_input(step, raw)), "step result")
        except Exception as exc:
            elapsed = _ms_since(began)
            fq.orchestrator.fail_step(header, start.attempt, exc, elapsed)
            raise
    fq.orchestrator.complete_step(header, start.attempt, result, _ms_since(began))
    return result


def _step_input(step: StepDef, raw: Any) -> Any:
    if step.input_model is None:
        return raw
    try:
        return step.input_model.model_validate(raw)
    except ValidationError as exc:
        raise InvalidInput(
            f"input of step {step.name!r} does not fit {step.input_model.__name__}: {exc}"
        ) from None


def _ms_since(began: float) -> int:
    return round((time.perf_counter() - began) * 1000)
