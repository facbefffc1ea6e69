"""Celery's hooks: the Celery signals flowqueue connects, and what only Celery sees of a
step. (A Celery signal is a hook; a flowqueue *signal* is an outside event.)

The worker's main process sees what happens to a step's pool process; it records each
in the run's log at once, as ``step.failed`` with a ``reason``:

- ``task_revoked``: a step ``terminated`` while it ran (``revoke(..., terminate=True)``),
  or ``revoked`` / ``expired`` before it ran. Never retried: Celery discards every later
  message with a revoked task id, and a step's retries keep its id. The run fails.
- ``StepRequest``, the steps' Celery request class (Celery runs it in the main process):
  a hard ``time_limit`` (``on_timeout``) and a lost pool child (``on_failure`` with
  ``WorkerLostError``, e.g. a SIGKILLed prefork child): retried or failed per the step's
  ``Retry``. Celery sends no ``task_failure`` for a lost child whose message it requeues
  (``task_reject_on_worker_lost``), and its hard-limit ``task_failure`` carries no message
  headers, so the request class records both.

A record names the step's status and attempt as read (``finish_step``'s ``expect``), so
it counts once: after it, the step is parked for its retry or failed, and the message's
redelivered copy finds it so instead of waiting out the dead attempt's lease.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any, Literal

from celery import Task, signals
from celery.exceptions import TaskRevokedError, TimeLimitExceeded, WorkerLostError
from celery.worker.request import Request

from flowqueue.authoring.step import FlowTask
from flowqueue.errors import ConfigurationError
from flowqueue.model.header import StepHeader, header_of
from flowqueue.runtime.engine import Flowqueue
from flowqueue.runtime.workers import describe_worker

log = logging.getLogger(__name__)

# step.failed's data.reason when the worker's main process records the failure.
Reason = Literal["terminated", "revoked", "expired", "time_limit", "worker_lost"]
_WHILE_RUNNING: frozenset[Reason] = frozenset({"terminated", "time_limit", "worker_lost"})
_RETRIED: frozenset[Reason] = frozenset({"time_limit", "worker_lost"})
_NOT_STARTED = frozenset({"queued", "retrying", "awaiting"})  # a message would start it
# How often the worker's main process looks for pool children that exited.
LOST_CHILD_CHECK_S = 0.5


def connect(app: Any, fq: Flowqueue) -> None:
    """Connect flowqueue's receivers to Celery's signals; each acts for ``app`` only."""
    registration = fq.worker_registration

    def import_flows(sender: Any = None, **_: Any) -> None:
        if sender is app:  # import the flow modules when this app's worker starts
            fq.import_workers()

    def worker_init(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:  # sender: the WorkController
            use_step_request(app)
            if not fq.connections.memory:
                refuse_a_cluster(fq)

    def worker_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:  # sender: the worker's Consumer (once)
            fq.timer_pump.start()  # every worker pumps timers: no single point
            if fq.archiver is not None:
                fq.archiver.start()  # every worker may archive; one at a time does
            registration.start(sender.hostname, describe_worker(app, sender))
            if not fq.connections.memory:
                fq.declare_triggers(sender.hostname)
            notice_lost_children(sender)

    def worker_shutdown(sender: Any = None, **_: Any) -> None:
        fq.timer_pump.stop()
        if fq.archiver is not None:
            fq.archiver.stop()
        if getattr(sender, "app", None) is app:  # sender: the WorkController
            registration.stop()

    def task_revoked(
        sender: Any = None,
        request: Any = None,
        terminated: bool = False,
        signum: Any = None,
        expired: bool = False,
        **_: Any,
    ) -> None:
        if not isinstance(sender, FlowTask) or sender.app is not app:
            return
        if terminated:
            reason: Reason = "terminated"
            text = f"terminated by Celery (revoke with terminate, {_signal_name(signum)})"
        elif expired:
            reason, text = "expired", "its message expired before it ran (Celery's expires)"
        else:
            reason, text = "revoked", "revoked in Celery before it ran"
        record(fq, request, TaskRevokedError(text), reason)

    signals.import_modules.connect(import_flows, weak=False)
    signals.worker_init.connect(worker_init, weak=False)
    signals.worker_process_init.connect(fq.connections.reset_after_fork, weak=False)
    signals.worker_ready.connect(worker_ready, weak=False)
    signals.worker_shutdown.connect(worker_shutdown, weak=False)
    signals.task_revoked.connect(task_revoked, weak=False)


def use_step_request(app: Any) -> None:
    """Give every step of ``app`` the ``StepRequest`` class (before the worker consumes)."""
    for task in app.tasks.values():
        if not isinstance(task, FlowTask) or task.Request is StepRequest:
            continue
        if task.Request != Task.Request:
            log.warning(
                "step task %s has its own Request class: a hard time limit or a lost pool "
                "child is noticed only when its lease runs out (subclass %s.%s to keep both)",
                task.name,
                __name__,
                StepRequest.__name__,
            )
            continue
        task.Request = StepRequest


def notice_lost_children(consumer: Any) -> None:
    """Look for exited pool children every ``LOST_CHILD_CHECK_S``. Celery's prefork pool
    looks when a child's pipe closes, but the child cannot be reaped yet at that instant
    (its pipes close before it is a zombie), so it finds it only at its next 5 s check
    (``AsynPool.timers``). A no-op for pools without children."""
    hub = getattr(consumer.controller, "hub", None)
    if hub is not None:
        hub.call_repeatedly(LOST_CHILD_CHECK_S, consumer.pool.maintain_pool)


class StepRequest(Request):  # type: ignore[misc]  # celery ships no type hints
    """A step's Celery request in the worker's main process: a hard time limit or a lost
    pool child is recorded before Celery acknowledges or requeues the message."""

    def on_timeout(self, soft: bool, timeout: float) -> None:
        fq = getattr(self.task.app, "flowqueue", None)
        if not soft and isinstance(fq, Flowqueue):
            text = f"the step ran longer than its time limit ({timeout} s); Celery killed it"
            failure = TimeLimitExceeded(text)
            record(fq, self._context, failure, "time_limit", self._elapsed(), arg=self._arg())
        super().on_timeout(soft, timeout)

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        exc = exc_info.exception
        exc = getattr(exc, "exc", exc)  # billiard's ExceptionWithTraceback wraps the child's
        fq = getattr(self.task.app, "flowqueue", None)
        # Celery counts a child's SystemExit as a lost worker too (its process is gone).
        if isinstance(exc, WorkerLostError | SystemExit | KeyboardInterrupt) and isinstance(
            fq, Flowqueue
        ):
            lost = exc if isinstance(exc, WorkerLostError) else WorkerLostError(repr(exc))
            record(fq, self._context, lost, "worker_lost", self._elapsed(), arg=self._arg())
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def _arg(self) -> Any:
        """The step's input, kept for its retry."""
        return self.args[0] if self.args else None

    def _elapsed(self) -> int | None:
        started = self.time_start
        return None if started is None else max(0, round((time.time() - started) * 1000))


def record(
    fq: Flowqueue,
    request: Any,
    failure: Exception,
    reason: Reason,
    duration_ms: int | None = None,
    *,
    arg: Any = None,
) -> None:
    """Record in the run's log what Celery did to a delivery of a step (``request``: its
    task ``Context``; ``arg``: its input, for a retry). Never raises: if Redis cannot be
    reached, the lease still ends the attempt."""
    try:
        header = header_of(request)
        if header is not None:
            _record(fq, header, failure, reason, duration_ms, arg)
    except Exception:
        log.exception("could not record %s of task %s", reason, getattr(request, "id", "?"))


def _record(
    fq: Flowqueue,
    header: StepHeader,
    failure: Exception,
    reason: Reason,
    duration_ms: int | None,
    arg: Any,
) -> None:
    progress = fq.coordinator.step_progress(header.run_id, header.step)
    status, attempts = progress.split(" ")
    attempt = int(attempts)
    # A first delivery runs before its claim (runtime/_deferred.py): "queued" is its run.
    unclaimed = header.queued_once and status == "queued"
    if reason in _WHILE_RUNNING and not unclaimed:
        if status != "running":  # it ended or moved on first: nothing of it to record
            return
    elif status in _NOT_STARTED:
        attempt += 1  # the attempt the discarded message would have run
    else:  # running: a revoked copy while another delivery runs it; or already ended
        return
    step = fq.flows.flow(header.flow).step(header.step)
    data: dict[str, Any] = {"reason": reason}
    if duration_ms is not None:
        data["duration_ms"] = duration_ms
    delay = fq.retries.record(
        header, step, attempt, failure, arg, retriable=reason in _RETRIED, expect=progress, **data
    )
    then = "fails" if delay is None else f"runs again in {delay:.3g} s"
    log.warning(
        "%s/%s attempt %d: %s; the step %s", header.run_id, header.step, attempt, reason, then
    )


def _signal_name(signum: Any) -> str:
    try:
        return signal.Signals(int(signum)).name
    except (TypeError, ValueError):
        return f"signal {signum}"


def refuse_a_cluster(fq: Flowqueue) -> None:
    """Stop a worker whose FLOWQUEUE_REDIS_URL is a Redis Cluster node before kombu fails
    on it with a bare MOVED (SystemExit: Celery's signals log an exception and go on)."""
    try:
        fq.connections.store  # noqa: B018 - opening the connections checks the Redis
    except ConfigurationError as exc:
        log.critical("%s", exc)
        raise SystemExit(1) from exc
