"""End to end on real ``celery worker`` processes: a redelivered step, what Celery's
inspect and events show, the flow graph. Each example flow runs to its end in
``tests/test_examples.py``, through the ``flowqueue.testing`` fixtures."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from flowqueue import list_flows, start_flow
from flowqueue.runtime._orchestrator import step_task_id

pytestmark = pytest.mark.e2e


def test_redelivered_finished_step_neither_runs_nor_writes(cluster):
    run = start_flow("example-flow", {"name": "bo"}, app=cluster.app)
    before = cluster.wait_terminal(run)
    graph = cluster.fq.flows.flow("example-flow")
    cluster.fq.orchestrator.send(
        cluster.fq.orchestrator.message(
            run, "example-flow", graph.step("first_step"), {"name": "bo"}
        )
    )
    worker = cluster.workers[0]
    deadline = time.monotonic() + 20
    while f"skipping {run}/first_step: done" not in worker.log():
        assert time.monotonic() < deadline, "the duplicate was never delivered"
        time.sleep(0.1)
    assert cluster.fq.store.read(run) == before


def test_inspect_registered_lists_the_step_tasks(cluster):
    argv = [
        str(Path(sys.executable).with_name("celery")),
        "-A",
        "flowqueue",
        "inspect",
        "registered",
    ]
    out = cluster.command(*argv, "-t", "10").stdout
    for task in ("workers.orders.validate", "workers.orders.ship", "workers.fanout.pick_19"):
        assert task in out


def test_list_flows_describes_steps_and_edges(cluster):
    flows = {f.name: f for f in list_flows(app=cluster.app)}
    order = flows["order"]
    assert [s.name for s in order.steps if s.entry] == ["validate"]
    edges = {(e.source, e.event, e.target) for e in order.edges}
    assert ("reserve_stock", "stock.reserved", "ship") in edges
    assert ("validate", "order.validated", "charge_card") in edges
    validate = next(s for s in order.steps if s.name == "validate")
    assert validate.input_schema is not None
    assert "order_id" in validate.input_schema["properties"]


def test_workers_send_task_events_for_steps_like_flower_reads(cluster):
    # Flower builds its task list from these events (worker_send_task_events is on).
    seen: list[tuple[str, str]] = []
    ready = threading.Event()

    def capture() -> None:
        def on_event(event: dict) -> None:
            seen.append((event["type"], event.get("uuid", "")))
            if event["type"] == "task-succeeded" and event["uuid"].endswith(":second_step"):
                receiver.should_stop = True

        with cluster.app.connection_for_read() as connection:
            receiver = cluster.app.events.Receiver(connection, handlers={"*": on_event})
            ready.set()
            receiver.capture(limit=None, timeout=30, wakeup=False)

    thread = threading.Thread(target=capture, daemon=True)
    thread.start()
    ready.wait(10)
    time.sleep(0.5)  # the receiver's queue is bound before the run starts
    run = start_flow("example-flow", {"name": "flo"}, app=cluster.app)
    cluster.wait_terminal(run)
    thread.join(30)
    for step in ("first_step", "second_step"):
        task_id = step_task_id(run, step)
        assert ("task-started", task_id) in seen
        assert ("task-succeeded", task_id) in seen
