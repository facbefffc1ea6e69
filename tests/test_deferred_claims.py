"""Deferred claims (``flowqueue/runtime/_deferred.py``): a step's first delivery, its
message queued once by the script that decided to send it, runs before its claim, and
claims at its first write, at its end (one call with the completion), or
``claim_defer_seconds`` into its body. Each delivery here is the queued message itself,
run through Celery's tracer as a pool process runs it."""

from __future__ import annotations

import base64
import json
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from celery.app.trace import build_tracer

from flowqueue import cancel, get_run, start_flow
from flowqueue.backend.redis.scripts import Script
from flowqueue.model.reducer import StepStatus

QUEUE = "celery\x06\x163"  # kombu's list for priority 3: a new run's entry steps
NEXT = "celery"  # priority 0: every later step


def deliver(app: Any, raw: bytes, *, redelivered: bool = False, time_limit: float = 0) -> Any:
    """Run a queued message as a worker's pool process does (Celery's tracer)."""
    payload = json.loads(raw)
    headers = payload["headers"]
    args, kwargs, embed = json.loads(base64.b64decode(payload["body"]))
    tracer = build_tracer(headers["task"], app.tasks[headers["task"]], app=app, eager=False)
    info = {"exchange": "", "routing_key": "celery", "priority": 3, "redelivered": redelivered}
    request = {**headers, **embed, "hostname": "w@test", "delivery_info": info}
    if time_limit:
        request["timelimit"] = (time_limit, None)
    return tracer(headers["id"], args, kwargs, request)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The script calls of a delivery, by script (``Script.run`` in this test's thread:
    a timer pump another test left running must not count)."""
    made: list[str] = []
    run = Script.run
    mine = threading.get_ident()

    def counted(self: Script, client: Any, /, **named: Any) -> Any:
        if threading.get_ident() == mine:
            made.append(self.filename.removesuffix(".lua"))
        return run(self, client, **named)

    monkeypatch.setattr(Script, "run", counted)
    return made


def kinds(app: Any, run: str) -> list[str]:
    return [e.kind for e in app.flowqueue.store.read(run)]


def test_a_first_delivery_claims_with_its_end_in_one_call(make_app, redis_client, calls):
    app = make_app(eager=False)
    run = start_flow("audit-a", {"what": "x"}, app=app)
    raw = redis_client.rpop(QUEUE)
    assert json.loads(raw)["headers"]["flowqueue"]["queued_once"] is True
    calls.clear()
    deliver(app, raw)
    assert calls == ["claim_finish"]  # the claim and the completion together
    assert kinds(app, run) == ["flow.started", "step.started", "step.completed", "flow.completed"]
    started = app.flowqueue.store.read(run)[1]
    assert started.data["attempt"] == 1
    assert started.meta["attempt"] == 1
    assert started.data["task_id"] == f"{run}:audit"
    assert started.data["worker"] == "w@test"
    assert get_run(run, app=app).steps["audit"].result == "audit-a:x"


def test_a_redelivered_message_claims_before_it_runs_and_a_finished_step_is_skipped(
    make_app, redis_client, calls
):
    app = make_app(eager=False)
    run = start_flow("audit-a", {"what": "x"}, app=app)
    raw = redis_client.rpop(QUEUE)
    calls.clear()
    deliver(app, raw, redelivered=True)  # as kombu marks a restored message
    assert calls == ["begin_step", "finish_step"]
    log = app.flowqueue.store.read(run)
    calls.clear()
    deliver(app, raw, redelivered=True)
    assert calls == ["begin_step"]  # its claim: done, so it does not run
    assert app.flowqueue.store.read(run) == log


def test_the_first_write_makes_the_claim_so_step_started_comes_first(make_app, redis_client):
    app = make_app(eager=False)
    run = start_flow("echo", {"v": 1}, app=app)
    deliver(app, redis_client.rpop(QUEUE))
    assert kinds(app, run) == [
        "flow.started",
        "step.started",
        "state.set",
        "log",
        "emit",
        "step.completed",
        "flow.completed",
    ]


def test_an_emit_carries_the_claim_so_an_emitting_step_makes_two_calls(
    make_app, redis_client, calls
):
    app = make_app(eager=False)
    run = start_flow("announce", {"name": "said.hi", "payload": {"n": 1}}, app=app)
    calls.clear()
    deliver(app, redis_client.rpop(QUEUE))
    assert calls == ["emit", "finish_step"]  # the emit carries the claim
    events = app.flowqueue.store.read(run)
    assert [e.kind for e in events] == [
        "flow.started",
        "step.started",
        "emit",
        "step.completed",
        "flow.completed",
    ]
    assert events[2].meta["attempt"] == 1


def test_an_emit_queues_the_next_step_once_and_its_first_delivery_defers_too(
    make_app, redis_client, calls
):
    app = make_app(eager=False)
    run = start_flow("slow", {"seconds": 0}, app=app)
    deliver(app, redis_client.rpop(QUEUE))
    queued = redis_client.lrange(NEXT, 0, -1)
    assert len(queued) == 1
    assert json.loads(queued[0])["headers"]["flowqueue"]["queued_once"] is True
    calls.clear()
    deliver(app, redis_client.rpop(NEXT))
    assert calls == ["claim_finish"]
    assert get_run(run, app=app).status == "completed"


def test_a_run_cancelled_before_the_claim_gets_nothing_from_the_delivery(make_app, redis_client):
    app = make_app(eager=False)
    run = start_flow("echo", {"v": 1}, app=app)
    raw = redis_client.rpop(QUEUE)
    cancel(run, app=app)
    log = app.flowqueue.store.read(run)
    deliver(app, raw)  # its first write claims, the claim finds the run ended
    assert app.flowqueue.store.read(run) == log
    assert redis_client.llen(NEXT) == 0  # and its emit sent nothing


def test_a_step_cancelled_before_it_ends_quietly_writes_nothing(make_app, redis_client):
    app = make_app(eager=False)
    run = start_flow("audit-a", {"what": "x"}, app=app)
    raw = redis_client.rpop(QUEUE)
    cancel(run, app=app)
    log = app.flowqueue.store.read(run)
    deliver(app, raw)  # claim and completion together: the claim says ended
    assert app.flowqueue.store.read(run) == log


def test_a_longer_step_is_claimed_once_its_defer_is_up(make_app, redis_client):
    app = make_app(eager=False, claim_defer_seconds=0.05)
    run = start_flow("quiet", {"seconds": 1.5}, app=app)
    raw = redis_client.rpop(QUEUE)
    seen: list[StepStatus] = []

    def watch() -> None:  # what a reader sees while the body runs
        time.sleep(0.75)
        seen.append(get_run(run, app=app).steps["quiet"].status)

    watcher = threading.Thread(target=watch)
    watcher.start()
    began = time.time()
    deliver(app, raw)
    watcher.join()
    assert seen == [StepStatus.RUNNING]  # claimed by the lease keeper, long before its end
    events = app.flowqueue.store.read(run)
    assert [e.kind for e in events][1:3] == ["step.started", "step.completed"]
    started, completed = events[1].ts.timestamp(), events[2].ts.timestamp()
    assert started - began < 0.75 < completed - began  # generous: tells the two apart


def test_no_defer_claims_every_delivery_before_it_runs(make_app, redis_client, calls):
    app = make_app(eager=False, claim_defer_seconds=0)
    run = start_flow("audit-a", {"what": "x"}, app=app)
    calls.clear()
    deliver(app, redis_client.rpop(QUEUE))
    assert calls == ["begin_step", "finish_step"]
    assert get_run(run, app=app).status == "completed"


def test_a_failure_is_recorded_for_the_attempt_its_claim_gives(make_app, redis_client):
    app = make_app(eager=False)
    run = start_flow("always-fails", {}, app=app)
    deliver(app, redis_client.rpop(QUEUE))
    events = app.flowqueue.store.read(run)
    assert [e.kind for e in events] == ["flow.started", "step.started", "step.failed"]
    assert events[2].data["attempt"] == 1
    assert events[2].data["will_retry"] is True
    assert get_run(run, app=app).steps["always_fails"].status == StepStatus.RETRYING


def test_a_hard_time_limit_within_twice_the_defer_claims_first(make_app, redis_client, calls):
    app = make_app(eager=False, claim_defer_seconds=0.5)
    run = start_flow("audit-a", {"what": "x"}, app=app)
    calls.clear()
    deliver(app, redis_client.rpop(QUEUE), time_limit=1)  # killed before a claim: not deferred
    assert calls == ["begin_step", "finish_step"]
    assert get_run(run, app=app).status == "completed"


def test_a_first_delivery_killed_before_its_claim_is_recorded_as_its_attempt(
    make_app, redis_client
):
    from celery.exceptions import WorkerLostError

    from flowqueue.runtime._celery_hooks import record

    app = make_app(eager=False)
    run = start_flow("always-fails", {}, app=app)
    headers = json.loads(redis_client.rpop(QUEUE))["headers"]
    request = SimpleNamespace(id=headers["id"], flowqueue=headers["flowqueue"])
    record(app.flowqueue, request, WorkerLostError("killed"), "worker_lost", arg={})
    failed = app.flowqueue.store.read(run)[-1]
    assert failed.kind == "step.failed"
    assert failed.data["reason"] == "worker_lost"
    assert failed.data["attempt"] == 1
    assert get_run(run, app=app).steps["always_fails"].status == StepStatus.RETRYING


@pytest.mark.parametrize(
    ("flow", "arg", "first", "writes"),
    [
        ("audit-a", {"what": "x"}, "claim_finish", ["step.completed"]),
        ("announce", {"name": "said.hi", "payload": 1}, "emit", ["emit", "step.completed"]),
    ],
)
def test_a_first_delivery_that_finds_an_earlier_attempt_claims_as_any_delivery(
    make_app, redis_client, calls, flow, arg, first, writes
):
    """A broker that delivers a message again without marking it (none known does):
    the call with its claim finds the attempt another delivery began, writes nothing,
    and the delivery claims as any delivery, then writes for the attempt that gives."""
    from flowqueue.model.header import StepHeader
    from flowqueue.model.statuses import ATTEMPT_SLOT

    app = make_app(eager=False)
    run = start_flow(flow, arg, app=app)
    raw = redis_client.rpop(QUEUE)
    header = StepHeader.model_validate(json.loads(raw)["headers"]["flowqueue"])
    started = header.event("step.started", ATTEMPT_SLOT, attempt=ATTEMPT_SLOT, worker="w@gone")
    assert app.flowqueue.coordinator.begin_step(started, 1).attempt == 1  # a 1 ms lease
    time.sleep(0.01)  # that delivery died: its lease has run out
    calls.clear()
    deliver(app, raw)
    assert calls[:2] == [first, "begin_step"]
    events = app.flowqueue.store.read(run)
    assert [(e.kind, e.meta.get("attempt")) for e in events] == [
        ("flow.started", None),
        ("step.started", 1),
        ("step.started", 2),
        *[(kind, 2) for kind in writes],
        ("flow.completed", None),
    ]
