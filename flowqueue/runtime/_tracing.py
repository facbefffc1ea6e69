"""OpenTelemetry (``FLOWQUEUE_TRACING=true``, extra ``otel``): a run is a trace, each
step delivery a span, and awaits are span events.

A run's trace id is its run id (a UUID's 128 bits; any other id's SHA-256), so every
process finds it without reading anything: each worker, the timer pump that resumes a
sleep hours later, a retry's delivery. A step's span is the child of the span that sent
its message (``traceparent`` in the step header: the step that emitted, across workers)
or else of the run's own root, a span id derived from the run id. Nothing here sets up
an SDK: spans go wherever the process's ``TracerProvider`` sends them (``opentelemetry-
instrument``, or your own setup in the worker's code), and without one they cost a no-op.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from flowqueue.model.awaits import Suspended
from flowqueue.model.header import StepHeader
from flowqueue.runtime.middleware import Delivery, Middleware

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER = "flowqueue"


def trace_id_of(run_id: str) -> int:
    """The run's trace id: its UUID, or 128 bits of its SHA-256."""
    try:
        return uuid.UUID(run_id).int or 1
    except ValueError:
        return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:16], "big") or 1


def root_span_id(run_id: str) -> int:
    return int.from_bytes(hashlib.sha256(b"root:" + run_id.encode()).digest()[:8], "big") or 1


def run_context(run_id: str) -> Context:
    """A context whose span is the run's root (remote: it is never exported itself)."""
    root = SpanContext(
        trace_id=trace_id_of(run_id),
        span_id=root_span_id(run_id),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(root))


def parent_of(header: StepHeader) -> Context:
    """The span that sent this delivery, if it belongs to the run's trace; else the root."""
    if header.traceparent:
        sent_by = _PROPAGATOR.extract({"traceparent": header.traceparent})
        span = trace.get_current_span(sent_by).get_span_context()
        if span.is_valid and span.trace_id == trace_id_of(header.run_id):
            return sent_by
    return run_context(header.run_id)


def traceparent_for(run_id: str) -> str:
    """The current span as a W3C ``traceparent``, when it is a span of ``run_id``'s trace
    (the step that sends the message); "" otherwise."""
    span = trace.get_current_span().get_span_context()
    if not span.is_valid or span.trace_id != trace_id_of(run_id):
        return ""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", "")


class Tracing(Middleware):
    """One span per delivery that runs a step; first in the list, so it is the outermost
    context and its ``after_failure`` sees the step's own exception."""

    def __init__(self) -> None:
        # A proxy until the process sets its TracerProvider, which may come later.
        self._tracer = trace.get_tracer(_TRACER)

    def around_step(self, delivery: Delivery) -> AbstractContextManager[Any]:
        return self._span(delivery)

    @contextmanager
    def _span(self, delivery: Delivery) -> Iterator[None]:
        header = delivery.header
        attributes: dict[str, str | int] = {
            "flowqueue.run_id": header.run_id,
            "flowqueue.flow": header.flow,
            "flowqueue.step": header.step,
            "flowqueue.attempt": delivery.attempt,
            "messaging.message.id": str(delivery.task.request.id or ""),
            "flowqueue.worker": str(delivery.task.request.hostname or ""),
        }
        with self._tracer.start_as_current_span(
            f"{header.flow}.{header.step}",
            context=parent_of(header),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=False,  # after_failure records the step's own exception
            set_status_on_exception=False,
        ) as span:
            if header.timer:
                span.add_event("flowqueue.resumed", {"timer": header.timer})
            yield

    def after_failure(self, delivery: Delivery, exc: BaseException) -> None:
        span = trace.get_current_span()
        if isinstance(exc, Suspended):
            span.add_event("flowqueue.await", {"flowqueue.step": delivery.header.step})
        elif isinstance(exc, Exception):
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
