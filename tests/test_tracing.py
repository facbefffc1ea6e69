"""OpenTelemetry (FLOWQUEUE_TRACING, flowqueue/runtime/_tracing.py) on real workers: the
workers load tests/otel_spans.py, an SDK provider that writes every span to a file, and
these tests read it. A run is one trace (its run id), each step delivery one span, the
child of the span that emitted to it (across workers), and awaits are span events."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowqueue import start_flow
from flowqueue.errors import ConfigurationError
from flowqueue.runtime._tracing import root_span_id, trace_id_of
from tests.worker_harness import Cluster

pytestmark = pytest.mark.e2e
ORDER = {"items": [{"sku": "fig", "quantity": 1}], "card": "5555"}


@pytest.fixture(scope="module")
def traced(redis_server, tmp_path_factory) -> Iterator[tuple[Cluster, Path]]:
    folder = tmp_path_factory.mktemp("traced")
    spans = folder / "spans.jsonl"
    cluster = Cluster(redis_server.url, folder, tracing=True)
    cluster.env["FLOWQUEUE_WORKERS"] = "workers,tests.flows,tests.otel_spans"
    cluster.env["FLOWQUEUE_TEST_SPANS"] = str(spans)
    cluster.start_worker(concurrency=1)
    cluster.start_worker(concurrency=1)
    yield cluster, spans
    cluster.close()


def spans_of(path: Path, run: str, at_least: int, timeout: float = 30) -> list[dict[str, Any]]:
    """The spans of ``run``'s trace once there are ``at_least`` (spans end after the
    step's last write, so a little after the run's terminal event)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        spans = [json.loads(line) for line in lines]
        ours = [s for s in spans if s["attributes"].get("flowqueue.run_id") == run]
        if len(ours) >= at_least or time.monotonic() > deadline:
            return ours
        time.sleep(0.05)


def test_a_run_is_one_trace_across_two_workers(traced):
    cluster, path = traced
    runs = [start_flow("order", {**ORDER, "order_id": f"t-{n}"}, app=cluster.app) for n in range(6)]
    workers: set[str] = set()
    for run in runs:
        assert cluster.wait_terminal(run, timeout=60)[-1].kind == "flow.completed"
        spans = {s["name"]: s for s in spans_of(path, run, at_least=4)}
        assert set(spans) == {"order.validate", "order.reserve_stock", "order.charge_card",
                              "order.ship"}  # fmt: skip
        assert {s["trace_id"] for s in spans.values()} == {trace_id_of(run)}
        assert spans["order.validate"]["parent_id"] == root_span_id(run)
        emitted = spans["order.validate"]["span_id"]  # its emit sent both
        assert spans["order.reserve_stock"]["parent_id"] == emitted
        assert spans["order.charge_card"]["parent_id"] == emitted
        joined = {spans["order.reserve_stock"]["span_id"], spans["order.charge_card"]["span_id"]}
        assert spans["order.ship"]["parent_id"] in joined  # the emit that completed the join
        workers |= {s["attributes"]["flowqueue.worker"] for s in spans.values()}
    assert len(workers) == 2


def test_an_await_is_a_span_event_and_the_resumed_delivery_stays_in_the_trace(traced):
    cluster, path = traced
    run = start_flow("nap", {"seconds": 0.5}, app=cluster.app)
    cluster.wait_terminal(run, timeout=60)
    spans = spans_of(path, run, at_least=2)
    assert [s["name"] for s in spans] == ["nap.nap", "nap.nap"]
    assert {s["trace_id"] for s in spans} == {trace_id_of(run)}
    parked, resumed = spans
    assert "flowqueue.await" in parked["events"]
    assert "flowqueue.resumed" in resumed["events"]
    assert parked["status"] == resumed["status"] == "UNSET"


def test_a_failed_attempt_is_an_error_span_with_its_exception(traced):
    cluster, path = traced
    run = start_flow("always-fails", {}, app=cluster.app)
    cluster.wait_terminal(run, timeout=60)
    spans = spans_of(path, run, at_least=2)
    assert [s["attributes"]["flowqueue.attempt"] for s in spans] == [1, 2]
    assert {s["status"] for s in spans} == {"ERROR"}
    assert all("exception" in s["events"] for s in spans)


def test_tracing_without_opentelemetry_says_what_to_install(monkeypatch):
    import builtins

    from flowqueue.runtime.engine import _tracing_middleware

    real_import = builtins.__import__

    def no_otel(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("flowqueue.runtime._tracing"):
            raise ModuleNotFoundError("No module named 'opentelemetry'", name="opentelemetry")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_otel)
    with pytest.raises(ConfigurationError, match=r"flowqueue\[otel\]"):
        _tracing_middleware()
