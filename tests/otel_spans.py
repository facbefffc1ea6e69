"""Loaded by traced test workers (FLOWQUEUE_WORKERS): an OpenTelemetry SDK provider whose
spans are written, one JSON line each, to $FLOWQUEUE_TEST_SPANS, for tests/test_tracing.py
to read from outside the worker's processes."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class JsonLines(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            context, parent = span.get_span_context(), span.parent
            line = {
                "name": span.name,
                "trace_id": context.trace_id if context else 0,
                "span_id": context.span_id if context else 0,
                "parent_id": parent.span_id if parent else None,
                "attributes": dict(span.attributes or {}),
                "events": [event.name for event in span.events],
                "status": span.status.status_code.name,
            }
            with open(self.path, "a") as out:  # one write per span: O_APPEND keeps lines whole
                out.write(json.dumps(line) + "\n")
        return SpanExportResult.SUCCESS


if os.environ.get("FLOWQUEUE_TEST_SPANS"):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(JsonLines(os.environ["FLOWQUEUE_TEST_SPANS"])))
    trace.set_tracer_provider(provider)
