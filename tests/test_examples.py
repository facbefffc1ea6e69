"""The example flows of ``workers/``, each run to its end on a real worker through the
``flowqueue.testing`` fixtures, as a user tests their own flows: ``run_flow`` starts a
run and returns its ``RunState`` once it has ended; ``flowqueue_worker`` is
``celery -A flowqueue worker`` started from the project directory."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from flowqueue import resume
from flowqueue.model.events import Event
from flowqueue.model.ids import stream_id_ms
from flowqueue.model.reducer import RunState
from flowqueue.runtime._orchestrator import step_task_id
from flowqueue.testing import awaiting
from workers.fanout import BRANCHES

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent

ORDER = {
    "order_id": "o-1",
    "items": [{"sku": "apple", "quantity": 2}, {"sku": "pear", "quantity": 1}],
    "card": "4242424242424242",
}


def kinds(log: list[Event], step: str | None = None) -> list[str]:
    return [e.kind for e in log if step is None or e.step == step]


def index(log: list[Event], kind: str, step: str | None = None) -> int:
    return next(i for i, e in enumerate(log) if e.kind == kind and e.step == step)


def eventually(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_example_flow_sets_state_emits_and_logs(run_flow, flowqueue_worker):
    state = run_flow("example-flow", {"name": "ada"})
    log = run_flow.events(state.run_id)
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
    assert started.data["task_id"] == step_task_id(state.run_id, "first_step")
    assert started.data["worker"] == flowqueue_worker.hostname


def test_order_flow_fans_out_and_joins(run_flow):
    state = run_flow("order", ORDER)
    log = run_flow.events(state.run_id)
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


def test_failing_step_fails_the_run_with_its_error(run_flow):
    state = run_flow("refund", {"amount": 12})
    log = run_flow.events(state.run_id)
    failed = next(e for e in log if e.kind == "step.failed")
    assert failed.step == "call_bank"
    assert failed.data["error"]["type"] == "BankDeclined"
    assert "Traceback" in failed.data["error"]["traceback"]
    assert failed.data["will_retry"] is False
    assert kinds(log)[-1] == "flow.failed"
    assert state.status == "failed"
    assert state.error is not None
    assert state.error.message == "refund of 12 declined"


def test_wide_fanout_joins_every_branch_once(run_flow):
    state = run_flow("order-fanout", {"order_id": "f-1"})
    log = run_flow.events(state.run_id)
    assert state.status == "completed"
    pickers = {f"pick_{branch}" for branch in range(BRANCHES)}
    assert {name for name, s in state.steps.items() if s.status == "completed"} == {
        "split",
        "pack",
        *pickers,
    }
    assert kinds(log, "pack").count("step.started") == 1
    assert state.steps["pack"].result == {"branches": list(range(BRANCHES))}


def test_flaky_call_succeeds_on_the_third_attempt_with_backoff(run_flow, flowqueue_app):
    state = run_flow("partner-sync", {"account": "acme"})
    log = run_flow.events(state.run_id)
    assert kinds(log, "call_partner") == [
        "step.started", "log", "step.failed", "step.retry",
        "step.started", "log", "step.failed", "step.retry",
        "step.started", "step.completed",
    ]  # fmt: skip
    failed = [e for e in log if e.kind == "step.failed"]
    assert [(f.data["attempt"], f.data["will_retry"]) for f in failed] == [(1, True), (2, True)]
    assert all(f.data["max_attempts"] == 3 for f in failed)
    retries = [e for e in log if e.kind == "step.retry"]
    assert [r.data["attempt"] for r in retries] == [2, 3]
    # Exponential backoff: 0.2 s then 0.4 s, each jittered to 50-100%.
    waits = [stream_id_ms(r.id) - stream_id_ms(f.id) for f, r in zip(failed, retries, strict=True)]
    assert waits[0] >= 100
    assert waits[1] >= 200
    assert log[-1].kind == "flow.completed"
    done = next(e for e in log if e.kind == "step.completed")
    assert done.data["result"] == {"synced": "acme", "attempts": 3}
    # Failed attempts end their Celery message (Ignore): nothing is left unacknowledged.
    broker = redis.Redis.from_url(flowqueue_app.flowqueue.settings.redis_url)
    run = state.run_id.encode()
    eventually(lambda: not [m for m in broker.hvals("unacked") if run in m], "acks")


def test_example_reminder_sleeps_then_follows_up(run_flow):
    state = run_flow("reminder", {"user": "ann", "message": "renew", "delay_seconds": 0.5})
    log = run_flow.events(state.run_id)
    assert log[-1].kind == "flow.completed"
    assert kinds(log, "follow_up") == [
        "step.started", "step.await.time", "step.resumed", "step.started", "log", "step.completed"
    ]  # fmt: skip
    assert [e.kind for e in log].count("step.once") == 1


def test_example_order_approval_pays_or_expires(run_flow, flowqueue_worker):
    paid = run_flow.start("order-approval", {"order_id": "A-1", "amount": 9.5})
    expired = run_flow.start(
        "order-approval", {"order_id": "A-2", "amount": 1, "payment_timeout_seconds": 0.5}
    )
    run_flow.wait(paid, until=awaiting("await_payment"))
    payment = json.dumps({"order_id": "A-1", "payment_id": "pay-77"})
    done = flowqueue_command(flowqueue_worker.env, "signal", "payment.confirmed", "--data", payment)
    assert done.returncode == 0
    assert "woke 1 waiting step" in done.stdout
    state = run_flow.wait(paid)
    assert state.steps["fulfil"].result == "fulfilled A-1"
    assert run_flow.events(paid)[-1].kind == "flow.completed"
    state = run_flow.wait(expired)
    names = [e.data["name"] for e in run_flow.events(expired) if e.kind == "emit"]
    assert names == ["order.expired"]
    assert "fulfil" not in state.steps


def test_example_expense_approval_waits_for_a_person(run_flow, flowqueue_app):
    run = run_flow.start("expense-approval", {"employee": "bo", "amount": 120})
    waiting = run_flow.wait(run, until=approval_requested)
    step = waiting.steps["request_approval"]
    assert step.awaiting is not None
    trigger = step.awaiting.trigger_id
    assert trigger
    assert step.awaiting.info == {"question": "Approve 120.00 for bo?"}
    assert waiting.logs[-1].fields == {"trigger": trigger}  # on_trigger ran, once
    resume(trigger, {"approved": True, "by": "cy"}, app=flowqueue_app)
    state = run_flow.wait(run)
    assert state.status == "completed"
    assert state.steps["pay_expense"].result == "paid bo"


def approval_requested(state: RunState) -> bool:
    """The step awaits its trigger and its on_trigger callback, which runs once the
    await is recorded, has logged the trigger."""
    logged = any(entry.msg == "approval requested" for entry in state.logs)
    return awaiting("request_approval")(state) and logged


def flowqueue_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The ``flowqueue`` command against the test app (the worker's environment)."""
    command = [str(Path(sys.executable).with_name("flowqueue")), *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
