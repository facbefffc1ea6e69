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
from contextlib import AbstractContextManager
from typing import Any

from celery.exceptions import Ignore, SoftTimeLimitExceeded

from flowqueue.authoring.context import current_context
from flowqueue.authoring.retry import Retry
from flowqueue.model.awaits import Suspended
from flowqueue.model.events import EventKind, NewEvent
from flowqueue.model.header import StepHeader
from flowqueue.model.timers import TimerSpec
from flowqueue.runtime._connections import Connections
from flowqueue.runtime._orchestrator import Orchestrator
from flowqueue.runtime.middleware import Delivery, Middleware, SkipDelivery

log = logging.getLogger(__name__)


class Claim(Middleware):
    """The delivery's one claim in the coordinator: run it, skip it, or look again later."""

    def __init__(self, connections: Connections, orchestrator: Orchestrator) -> None:
        self.connections = connections
        self.orchestrator = orchestrator

    def before_step(self, delivery: Delivery) -> None:
        header, request = delivery.header, delivery.task.request
        started = header.event(
            EventKind.STEP_STARTED,
            "$attempt",  # the coordinator writes the attempt it claims
            attempt="$attempt",
            task_id=request.id,
            worker=request.hostname,
        )
        start = self.connections.coordinator.begin_step(
            started, self.connections.lease_ms, timer=header.timer, on_claim=claim_event(header)
        )
        if start.decision == "busy":
            # Another delivery is running it: look again once its lease could have run out.
            log.info("%s/%s is running elsewhere; re-checking later", header.run_id, header.step)
            self.orchestrator.enqueue(
                header.run_id, header.flow, delivery.step, delivery.arg, start.busy_ms / 1000
            )
            raise SkipDelivery
        if start.decision != "run":  # done, ended, wait or stale
            log.info("skipping %s/%s: %s", header.run_id, header.step, start.decision)
            raise SkipDelivery
        delivery.attempt = start.attempt


def claim_event(header: StepHeader) -> NewEvent | None:
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
        backend, header = self.connections, delivery.header
        return backend.leases.holding(backend.coordinator, header.run_id, header.step)


class Suspension(Middleware):
    """At an await the step is recorded and parked; a timer, event or trigger resume
    sends it again. The task ends without a result."""

    def after_failure(self, delivery: Delivery, exc: BaseException) -> None:
        if isinstance(exc, Suspended):
            raise Ignore() from None


class Retries(Middleware):
    """A failed attempt runs again after its policy's delay (a durable timer), or the
    step and its run fail for good."""

    def __init__(self, orchestrator: Orchestrator, default: Retry) -> None:
        self.orchestrator = orchestrator
        self.default = default

    def after_failure(self, delivery: Delivery, exc: BaseException) -> None:
        if not isinstance(exc, Exception):
            return
        failure = _explained(exc, delivery)
        policy = delivery.step.retry or self.default
        header, attempt, elapsed = delivery.header, delivery.attempt, delivery.elapsed_ms
        if policy.should_retry(failure, attempt):
            delay = policy.delay_for(attempt)
            self.orchestrator.retry_step(
                header, attempt, failure, elapsed, delay, policy.attempts, delivery.arg
            )
            raise Ignore() from exc  # the attempt is over and recorded
        self.orchestrator.fail_step(header, attempt, failure, elapsed, policy.attempts)


def _explained(exc: Exception, delivery: Delivery) -> Exception:
    """A soft time limit says which limit it hit (Celery's own message is empty)."""
    if isinstance(exc, SoftTimeLimitExceeded):
        task = delivery.task
        limit = task.request.timelimit[1] if task.request.timelimit else task.soft_time_limit
        failure: Exception = SoftTimeLimitExceeded(
            f"the step ran longer than its soft time limit ({limit} s)"
        )
        failure.__traceback__ = exc.__traceback__
        return failure
    return exc


class Completion(Middleware):
    """Records the step's result once; the last step to finish ends the run."""

    def __init__(self, orchestrator: Orchestrator) -> None:
        self.orchestrator = orchestrator

    def after_step(self, delivery: Delivery, result: Any) -> None:
        self.orchestrator.complete_step(
            delivery.header, delivery.attempt, result, delivery.elapsed_ms
        )
