"""flowqueue without Redis or workers: the in-memory backend with Celery's eager mode runs
whole flows inline (for unit tests of user flows and local development)."""

from __future__ import annotations

import time

import pytest

from flowqueue import FlowTask, cancel, create_app, get_run, resume, signal, start_flow
from flowqueue.errors import (
    InvalidInput,
    RunAlreadyEnded,
    StepCalledDirectly,
    TriggerAlreadyUsed,
    UnknownFlow,
)
from flowqueue.settings import Settings


@pytest.fixture
def app():
    app = create_app(Settings(redis_url="memory://", workers="workers,tests.flows"))
    app.conf.task_always_eager = True
    yield app
    app.flowqueue.close()


def test_example_flow_runs_inline(app):
    run = start_flow("example-flow", {"name": "eve"}, app=app)
    state = get_run(run, app=app)
    assert state.status == "completed"
    assert state.state == {"greeting": "hello, eve"}
    assert [s.status for s in state.steps.values()] == ["completed", "completed"]


def test_order_join_runs_once_inline(app):
    order = {"order_id": "m1", "items": [{"sku": "x", "quantity": 1}], "card": "4000"}
    run = start_flow("order", order, app=app)
    state = get_run(run, app=app)
    assert state.status == "completed"
    assert state.steps["ship"].attempts == 1
    assert state.steps["ship"].result["tracking"] == "trk-m1"


def test_failing_flow_fails_inline(app):
    run = start_flow("refund", {"amount": 1}, app=app)
    assert get_run(run, app=app).status == "failed"


def test_bad_input_is_rejected_before_anything_is_written(app):
    with pytest.raises(UnknownFlow, match=r"known flows: .*example-flow"):
        start_flow("no-such-flow", {}, app=app)
    with pytest.raises(InvalidInput, match="does not fit Order"):
        start_flow("order", {"order_id": "x", "items": [], "card": "1"}, app=app)
    with pytest.raises(InvalidInput, match=r"input\.when is a object"):
        start_flow("example-flow", {"when": object()}, app=app)
    fq = app.flowqueue
    assert fq.store.list_runs("order") == []
    assert fq.store.list_runs("example-flow") == []


def test_a_step_can_serve_several_flows(app):
    for flow in ("audit-a", "audit-b"):
        run = start_flow(flow, {"what": "books"}, app=app)
        assert get_run(run, app=app).steps["audit"].result == f"{flow}:books"


def test_app_task_with_flowtask_base_is_a_step(app):
    @app.task(base=FlowTask, flow="direct", entry=True, name="tests.direct_entry")
    def direct_entry(ctx, input):
        ctx.emit("direct.done", {"n": input["n"] + 1})

    @app.task(base=FlowTask, flow="direct", subscribes=["direct.done"], name="tests.direct_next")
    def direct_next(ctx, inputs):
        return inputs["direct.done"]["n"] * 10

    run = start_flow("direct", {"n": 1}, app=app)
    state = get_run(run, app=app)
    assert state.status == "completed"
    assert state.steps["direct_next"].result == 20


def test_calling_a_step_without_a_flow_says_how_to_start_one(app):
    task = app.tasks["workers.example_flow.first_step"]
    with pytest.raises(StepCalledDirectly, match="start_flow"):
        task.apply(args=[{}]).get()


def ended(app, run: str, timeout: float = 10.0):
    """The run's state once it ended (timers fire on the in-process pump thread)."""
    deadline = time.monotonic() + timeout
    while (state := get_run(run, app=app)).status in ("pending", "running"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run} still {state.status}")
        time.sleep(0.02)
    return state


def test_awaits_run_in_memory_too(app):
    reminder = start_flow("reminder", {"user": "a", "message": "m", "delay_seconds": 0.2}, app=app)
    order = start_flow("order-approval", {"order_id": "m-1", "amount": 1}, app=app)
    assert get_run(order, app=app).steps["await_payment"].status == "awaiting"
    assert signal("payment.confirmed", {"order_id": "m-1", "payment_id": "p"}, app=app) == 1
    expense = start_flow("expense-approval", {"employee": "e", "amount": 2}, app=app)
    info = get_run(expense, app=app).steps["request_approval"].awaiting
    assert info is not None
    assert info.trigger_id is not None
    resume(info.trigger_id, {"approved": False, "by": "x"}, app=app)
    with pytest.raises(TriggerAlreadyUsed, match="already resumed"):
        resume(info.trigger_id, {}, app=app)
    assert ended(app, reminder).steps["follow_up"].status == "completed"
    assert ended(app, order).steps["fulfil"].result == "fulfilled m-1"
    assert ended(app, expense).steps["request_approval"].result == {"approved": False, "by": "x"}


def test_cancel_in_memory(app):
    run = start_flow("nap", {"seconds": 30}, app=app)
    assert get_run(run, app=app).steps["nap"].status == "awaiting"
    cancel(run, "no longer needed", app=app)
    state = get_run(run, app=app)
    assert state.status == "cancelled"
    assert state.cancel_reason == "no longer needed"
    with pytest.raises(RunAlreadyEnded):
        cancel(run, app=app)


def test_memory_mode_is_a_redis_server_of_the_apps_own_that_stops_with_it():
    """``memory://`` runs the production store and Lua scripts on a redis-server started
    for this app on first use; two apps see nothing of each other; close() stops it."""
    import redis

    first = create_app(Settings(redis_url="memory://", workers="workers"))
    second = create_app(Settings(redis_url="memory://", workers="workers"))
    first.conf.task_always_eager = second.conf.task_always_eager = True
    run = start_flow("example-flow", {"name": "a"}, app=first)
    url = first.flowqueue.backend_settings().redis_url
    assert url.startswith("redis://127.0.0.1:")
    assert second.flowqueue.backend_settings().redis_url != url
    assert second.flowqueue.store.list_runs("example-flow") == []
    assert [r.run_id for r in first.flowqueue.store.list_runs("example-flow")] == [run]
    first.flowqueue.close()
    second.flowqueue.close()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()


def test_a_memory_servers_dies_with_a_process_killed_outright(tmp_path):
    """SIGKILL leaves no cleanup to run; the server must not be left behind anyway."""
    import os
    import signal
    import subprocess
    import sys

    import redis

    code = (
        "from flowqueue import create_app\n"
        "from flowqueue.settings import Settings\n"
        "app = create_app(Settings(redis_url='memory://', workers='workers'))\n"
        "print(app.flowqueue.backend_settings().redis_url, flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        url = child.stdout.readline().strip()
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        assert client.ping()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 10  # the watchdog looks once a second
    while time.monotonic() < deadline:
        try:
            client.ping()
        except redis.ConnectionError:
            return
        time.sleep(0.2)
    raise AssertionError(f"the memory:// server at {url} outlived its killed process")
