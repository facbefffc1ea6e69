"""One delivery of a step: claim it, run it with a ``FlowContext``, record how it ended.

Celery delivers a step at least once; the coordinator makes the effects count once: a
finished step's duplicate delivery returns without running, a copy that arrives while
another delivery still holds the step's lease is put back for later, and a step waiting
for a retry or an await runs only for the delivery whose timer it claims.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from celery.exceptions import Ignore, SoftTimeLimitExceeded
from pydantic import ValidationError

from flowqueue.authoring.context import FlowContext, bound
from flowqueue.authoring.flows import StepDef
from flowqueue.errors import InvalidInput
from flowqueue.model.awaits import Suspended
from flowqueue.model.events import EventKind, NewEvent
from flowqueue.model.header import StepHeader
from flowqueue.model.timers import TimerSpec
from flowqueue.model.validation import to_jsonable
from flowqueue.runtime import _logcapture as logcapture
from flowqueue.runtime.engine import flowqueue_of

if TYPE_CHECKING:
    from flowqueue.authoring.step import FlowTask

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
    coordinator = fq.coordinator
    start = coordinator.begin_step(
        started, fq.lease_ms, timer=header.timer, on_claim=_claim_event(header)
    )
    if start.decision in ("done", "ended", "wait", "stale"):
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
    resumed = bool(header.timer) or start.attempt > 1  # only then can awaits be recorded
    ctx = FlowContext(fq, header, start.attempt, raw, request.id, resumed=resumed)
    logcapture.ensure_installed()
    began = time.perf_counter()
    with fq.leases.holding(coordinator, header.run_id, header.step), bound(ctx):
        try:
            result = _run(task, step, ctx, raw)
        except Suspended:
            # The await is recorded and the step parked; a timer, event or trigger resume
            # sends it again. The task ends without a result.
            raise Ignore() from None
        except Exception as exc:
            failure = _explained(exc, task)
            policy = step.retry or fq.default_retry
            elapsed = _ms_since(began)
            if policy.should_retry(failure, start.attempt):
                delay = policy.delay_for(start.attempt)
                fq.orchestrator.retry_step(
                    header, start.attempt, failure, elapsed, delay, policy.attempts, raw
                )
                # The attempt is over and recorded; a durable timer sends the next one.
                raise Ignore() from exc
            fq.orchestrator.fail_step(header, start.attempt, failure, elapsed, policy.attempts)
            raise
    fq.orchestrator.complete_step(header, start.attempt, result, _ms_since(began))
    return result


def _run(task: FlowTask, step: StepDef, ctx: FlowContext, raw: Any) -> Any:
    """The step's function between its declared awaits."""
    value = _step_input(step, raw)
    if step.await_before is not None:
        ctx.awaited = step.await_before.wait(ctx, value)
    if step.await_after is None:
        return to_jsonable(task.run(ctx, value), "step result")
    # The function must not run again when the step resumes after the await.
    result = ctx.once("__step__", lambda: to_jsonable(task.run(ctx, value), "step result"))
    step.await_after.wait(ctx, value)
    return result


def _claim_event(header: StepHeader) -> NewEvent | None:
    """What a delivery sent by a timer appends when its claim wins."""
    if not header.timer:
        return None
    spec = TimerSpec.model_validate_json(header.timer)
    kind, data = _CLAIM_EVENTS.get(spec.kind, (None, {}))
    if kind is None:
        return None
    return NewEvent(
        kind=kind,
        run_id=header.run_id,
        flow=header.flow,
        step=header.step,
        data={"key": spec.key, **data} if spec.kind != "retry" else dict(data),
        meta={"attempt": "$attempt"} if spec.kind == "retry" else {},
    )


_CLAIM_EVENTS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "retry": (EventKind.STEP_RETRY, {"attempt": "$attempt"}),
    "wake": (EventKind.STEP_RESUMED, {}),
    "event": (EventKind.STEP_RESUMED, {"result": "$result"}),
    "timeout": (EventKind.STEP_AWAIT_TIMEOUT, {}),
    "resume": (None, {}),  # step.resumed was appended by flowqueue.resume
}


def _explained(exc: Exception, task: FlowTask) -> Exception:
    """A soft time limit says which limit it hit (Celery's own message is empty)."""
    if isinstance(exc, SoftTimeLimitExceeded):
        limit = task.request.timelimit[1] if task.request.timelimit else task.soft_time_limit
        message = f"the step ran longer than its soft time limit ({limit} s)"
        failure: Exception = SoftTimeLimitExceeded(message)
        failure.__traceback__ = exc.__traceback__
        return failure
    return exc


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
