"""End to end: the example flows on real ``celery worker`` processes."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from flowqueue import get_run, list_flows, start_flow
from flowqueue.model.events import Event
from flowqueue.model.reducer import reduce
from flowqueue.runtime._orchestrator import step_task_id

pytestmark = pytest.mark.e2e

ORDER = {
    "order_id": "o-1",
    "items": [{"sku": "apple", "quantity": 2}, {"sku": "pear", "quantity": 1}],
    "card": "4242424242424242",
}


def kinds(log: list[Event], step: str | None = None) -> list[str]:
    return [e.kind for e in log if step is None or e.step == step]


def index(log: list[Event], kind: str, step: str | None = None) -> int:
    return next(i for i, e in enumerate(log) if e.kind == kind and e.step == step)


def test_example_flow_sets_state_emits_and_logs(cluster):
    run = start_flow("example-flow", {"name": "ada"}, app=cluster.app)
    log = cluster.wait_terminal(run)
    assert kinds(log, "first_step") == [
        "step.started",
        "log",
        "state.set",
        "emit",
        "step.completed",
    ]
    assert kinds(log, "second_step") == ["step.started", "log", "step.completed"]
    assert index(log, "emit", "first_step") < index(log, "step.started", "second_step")
    assert kinds(log)[0] == "flow.started"
    assert kinds(log)[-1] == "flow.completed"
    state = get_run(run, app=cluster.app)
    assert state.status == "completed"
    assert state.state == {"greeting": "hello, ada"}
    assert state.steps["second_step"].result == {
        "greeting": "hello, ada",
        "from_first": {"name": "ada"},
    }
    # ctx.log and a plain logging call inside the step both land in the run.
    assert [(entry.step, entry.msg) for entry in state.logs] == [
        ("first_step", "first step running"),
        ("second_step", "second step read 'hello, ada' from the run state"),
    ]
    started = next(e for e in log if e.kind == "step.started")
    assert started.data["task_id"] == step_task_id(run, "first_step")
    assert started.data["worker"].startswith("w")


def test_order_flow_fans_out_and_joins(cluster):
    run = start_flow("order", ORDER, app=cluster.app)
    log = cluster.wait_terminal(run)
    state = reduce(log)
    assert state.status == "completed"
    assert {name: s.status for name, s in state.steps.items()} == dict.fromkeys(
        ["validate", "reserve_stock", "charge_card", "ship"], "completed"
    )
    ship_started = index(log, "step.started", "ship")
    for step, event in (("reserve_stock", "stock.reserved"), ("charge_card", "card.charged")):
        emitted = next(e for e in log if e.kind == "emit" and e.data["name"] == event)
        assert emitted.step == step
        assert log.index(emitted) < ship_started
    assert kinds(log, "ship").count("step.started") == 1
    assert state.steps["ship"].result == {
        "tracking": "trk-o-1",
        "reservation": "res-o-1",
        "charge": "ch-o-1",
    }
    assert kinds(log).count("flow.completed") == 1


def test_failing_step_fails_the_run_with_its_error(cluster):
    run = start_flow("refund", {"amount": 12}, app=cluster.app)
    log = cluster.wait_terminal(run)
    failed = next(e for e in log if e.kind == "step.failed")
    assert failed.step == "call_bank"
    assert failed.data["error"]["type"] == "BankDeclined"
    assert "Traceback" in failed.data["error"]["traceback"]
    assert failed.data["will_retry"] is False
    assert kinds(log)[-1] == "flow.failed"
    state = reduce(log)
    assert state.status == "failed"
    assert state.error is not None
    assert state.error.message == "refund of 12 declined"


def test_redelivered_finished_step_neither_runs_nor_writes(cluster):
    run = start_flow("example-flow", {"name": "bo"}, app=cluster.app)
    before = cluster.wait_terminal(run)
    graph = cluster.fq.flows.flow("example-flow")
    cluster.fq.orchestrator.enqueue(run, "example-flow", graph.step("first_step"), {"name": "bo"})
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
