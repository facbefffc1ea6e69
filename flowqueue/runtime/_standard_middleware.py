"""The middleware every app runs, in this order: the claim, log capture (standard
``logging`` calls inside a step recorded in the run's log), the lease,
suspension at an await, retries, and the record of a completed step.

Celery delivers a step at least once; the coordinator makes the effects count once: a
finished step's duplicate delivery ends without running, a copy that arrives while
another delivery still holds the step's lease is put back for later, and a step waiting
for a retry or an await runs only for the delivery whose timer it claims.
"""

from __future__ import annotations

import contextvars
import logging
import time
import traceback
from contextlib import AbstractContextManager
from typing import Any

from celery.exceptions import Ignore, SoftTimeLimitExceeded

from flowqueue.authoring.context import current_context
from flowqueue.authoring.flows import StepDef
from flowqueue.authoring.retry import Retry
from flowqueue.backend.coordinator import StepFinish, StepStart
from flowqueue.model.awaits import Suspended
from flowqueue.model.events import EventKind, NewEvent
from flowqueue.model.header import StepHeader
from flowqueue.model.ids import format_ts, ms_to_datetime
from flowqueue.model.statuses import ATTEMPT_SLOT, DURATION_SLOT, RESULT_SLOT
from flowqueue.model.timers import TimerSpec, now_ms
from flowqueue.runtime._connections import Connections
from flowqueue.runtime._deferred import DeferredClaim
from flowqueue.runtime._monitor import attempt_over
from flowqueue.runtime._orchestrator import Orchestrator, run_event
from flowqueue.runtime.middleware import Delivery, Middleware, SkipDelivery

log = logging.getLogger(__name__)
TRACEBACK_LIMIT = 8_000  # characters of traceback kept in step.failed


class Claim(Middleware):
    """The delivery's one claim in the coordinator: run it, skip it, or look again later."""

    def __init__(self, connections: Connections, orchestrator: Orchestrator) -> None:
        self.connections = connections
        self.orchestrator = orchestrator

    def before_step(self, delivery: Delivery) -> None:
        header, request = delivery.header, delivery.task.request
        started = header.event(
            EventKind.STEP_STARTED,
            ATTEMPT_SLOT,  # the coordinator writes the attempt it claims
            attempt=ATTEMPT_SLOT,
            task_id=request.id,
            worker=request.hostname,
        )
        connections = self.connections

        def claim() -> StepStart:
            return connections.coordinator.begin_step(
                started,
                connections.lease_ms,
                timer=header.timer,
                on_claim=claim_event(header),
                start=header.start,
            )

        defer = connections.settings.claim_defer_seconds
        if (
            defer > 0
            and header.queued_once
            and not _redelivered(request)
            and _outlasts(request, delivery.task, defer)
        ):
            # Its first delivery: the step cannot be finished or running (_deferred).
            delivery.deferred = DeferredClaim(started, claim, time.monotonic() + defer)
            delivery.attempt = 1
            return
        start = claim()
        if start.decision == "busy":
            # Another delivery is running it: look again once its lease could have run out.
            log.info("%s/%s is running elsewhere; re-checking later", header.run_id, header.step)
            later, retries = start.busy_ms / 1000, request.retries or 0  # Flower's count stays
            orchestrator = self.orchestrator
            orchestrator.send(
                orchestrator.message(
                    header.run_id, header.flow, delivery.step, delivery.arg, later, retries=retries
                )
            )
            raise SkipDelivery
        if start.decision != "run":  # done, ended, wait or stale
            log.info("skipping %s/%s: %s", header.run_id, header.step, start.decision)
            raise SkipDelivery
        delivery.attempt = start.attempt


def _redelivered(request: Any) -> bool:
    """The broker delivers this message again (kombu marks a restored or requeued one)."""
    info = getattr(request, "delivery_info", None) or {}
    return bool(info.get("redelivered") or getattr(request, "redelivered", False))


def _outlasts(request: Any, task: Any, defer: float) -> bool:
    """The step's hard time limit, if any, leaves its deferred claim time to be made."""
    limits = getattr(request, "timelimit", None) or (None, None)
    hard = limits[0] or getattr(task, "time_limit", None)
    return hard is None or hard > 2 * defer


def claim_event(header: StepHeader) -> NewEvent | None:
    """What a delivery sent by a timer appends when its claim wins."""
    spec = TimerSpec.model_validate_json(header.timer) if header.timer else None
    if spec is None or spec.kind == "resume":  # step.resumed was appended by flowqueue.resume
        return None
    if spec.kind == "retry":
        return header.event(EventKind.STEP_RETRY, ATTEMPT_SLOT, attempt=ATTEMPT_SLOT)
    kind, data = _AWAIT_ENDS[spec.kind]
    where = {"run_id": header.run_id, "flow": header.flow, "step": header.step}
    return NewEvent(kind=kind, **where, data={"key": spec.key, **data})


# What ends an await when the delivery its timer sent claims the step.
_AWAIT_ENDS: dict[str, tuple[str, dict[str, Any]]] = {
    "wake": (EventKind.STEP_RESUMED, {}),
    "event": (EventKind.STEP_RESUMED, {"result": RESULT_SLOT}),
    "timeout": (EventKind.STEP_AWAIT_TIMEOUT, {}),
}


class LogCapture(Middleware):
    """Standard ``logging`` calls inside a step go to the run's log too (one
    ``RunLogHandler`` on the root logger)."""

    def before_step(self, delivery: Delivery) -> None:
        root = logging.getLogger()
        if not any(isinstance(h, RunLogHandler) for h in root.handlers):
            root.addHandler(RunLogHandler())


# Loggers of the machinery itself: recording them would recurse or flood runs with noise.
_IGNORED = ("flowqueue", "celery", "kombu", "amqp", "redis", "billiard", "urllib3", "asyncio")
_writing: contextvars.ContextVar[bool] = contextvars.ContextVar("fq_log_writing", default=False)


class RunLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        ctx = current_context()
        if (
            ctx is None
            or ctx.replaying
            or _writing.get()
            or getattr(record, "flowqueue_recorded", False)
            or record.name.startswith(_IGNORED)
        ):
            return
        token = _writing.set(True)
        try:
            fields = {"logger": record.name}
            if record.exc_info and record.exc_info[1] is not None:
                fields["exception"] = repr(record.exc_info[1])
            ctx.append(
                EventKind.LOG,
                level=record.levelname.lower(),
                msg=record.getMessage(),
                fields=fields,
            )
        except Exception:
            self.handleError(record)
        finally:
            _writing.reset(token)


class Lease(Middleware):
    """The step's lease is renewed while its body runs (a redelivered copy waits)."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    def around_step(self, delivery: Delivery) -> AbstractContextManager[Any]:
        header = delivery.header
        return self.connections.leases.holding(header.run_id, header.step, delivery.deferred)


class Suspension(Middleware):
    """At an await the step is recorded and parked; a timer, event or trigger resume
    sends it again. The task ends without a result."""

    def after_failure(self, delivery: Delivery, exc: BaseException) -> None:
        if isinstance(exc, Suspended):
            raise Ignore() from None


class Retries(Middleware):
    """A failed attempt runs again after its policy's delay (a durable timer), or the
    step fails for good, and with it the run."""

    def __init__(self, connections: Connections, default: Retry) -> None:
        self.connections = connections
        self.default = default

    def after_failure(self, delivery: Delivery, exc: BaseException) -> None:
        if not isinstance(exc, Exception):
            return
        failure = _explained(exc, delivery)
        header, step, attempt = delivery.header, delivery.step, delivery.attempt
        delay = self.record(
            header, step, attempt, failure, delivery.arg, duration_ms=delivery.elapsed_ms
        )
        if delay is not None:
            # The attempt is over and recorded; Celery's Retry shows it to monitors.
            raise attempt_over(delivery, failure, delay) from exc

    def record(
        self,
        header: StepHeader,
        step: StepDef,
        attempt: int,
        failure: Exception,
        arg: Any,
        *,
        retriable: bool = True,
        expect: str = "",
        **data: Any,
    ) -> float | None:
        """Record failed ``attempt`` once: it runs again after the policy's delay (returned),
        or the step fails for good and the run with it (None). ``data`` goes into
        step.failed; ``expect`` is ``finish_step``'s (a recorder outside the delivery)."""
        policy = step.retry or self.default
        coordinator = self.connections.coordinator
        error = error_info(failure)
        failed = {"error": error, "attempt": attempt, "max_attempts": policy.attempts, **data}
        if retriable and policy.should_retry(failure, attempt):
            delay = policy.delay_for(attempt)
            due_ms = now_ms() + round(delay * 1000)
            event = header.event(
                EventKind.STEP_FAILED,
                attempt,
                **failed,
                will_retry=True,
                next_retry_at=format_ts(ms_to_datetime(due_ms)),
                delay_s=round(delay, 3),
            )
            timer = TimerSpec(
                kind="retry",
                run_id=header.run_id,
                flow=header.flow,
                step=header.step,
                attempt=attempt + 1,
            ).member()
            coordinator.finish_step(
                event, "retry", None, timer=timer, due_ms=due_ms, arg=arg, expect=expect
            )
            return delay
        event = header.event(EventKind.STEP_FAILED, attempt, **failed, will_retry=False)
        summary = {"type": error["type"], "message": error["message"]}
        terminal = run_event(
            EventKind.FLOW_FAILED, header.run_id, header.flow, error=summary, step=header.step
        )
        if coordinator.finish_step(event, "failed", terminal, expect=expect).terminal:
            # Other steps of the run may still hold timers, waiters or triggers.
            coordinator.cancel(header.run_id, header.flow, None)
        return None


def error_info(exc: BaseException) -> dict[str, Any]:
    text = "".join(traceback.format_exception(exc))
    return {"type": type(exc).__name__, "message": str(exc), "traceback": text[-TRACEBACK_LIMIT:]}


def _explained(exc: Exception, delivery: Delivery) -> Exception:
    """A soft time limit says which limit it hit (Celery's own message is empty)."""
    if isinstance(exc, SoftTimeLimitExceeded):
        task = delivery.task
        limit = task.request.timelimit[1] if task.request.timelimit else task.soft_time_limit
        failure: Exception = SoftTimeLimitExceeded(
            f"the step ran longer than its soft time limit ({limit} s)"
        )
        return failure.with_traceback(exc.__traceback__)
    return exc


class Completion(Middleware):
    """Records the step's result once; the last step to finish ends the run."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    def after_step(self, delivery: Delivery, result: Any) -> None:
        header, coordinator = delivery.header, self.connections.coordinator
        terminal = run_event(
            EventKind.FLOW_COMPLETED, header.run_id, header.flow, duration_ms=DURATION_SLOT
        )

        def completed() -> NewEvent:
            return header.event(
                EventKind.STEP_COMPLETED,
                delivery.attempt,
                result=result,
                duration_ms=delivery.elapsed_ms,
            )

        def alone(attempt: int) -> StepFinish:
            delivery.attempt = attempt
            return coordinator.finish_step(completed(), "completed", terminal)

        deferred = delivery.deferred
        if deferred is None:
            alone(delivery.attempt)
            return

        def together() -> tuple[StepStart, StepFinish | None]:
            lease_ms = self.connections.lease_ms
            return coordinator.claim_finish(deferred.started, lease_ms, completed(), terminal)

        deferred.settle(together, alone)
