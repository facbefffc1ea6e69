"""Awaits on real workers: sleeps, event waits, triggers, timeouts, replay, cancellation,
and the bad input that must write nothing. The example flows that await (reminder, order
and expense approval) run in ``tests/test_examples.py``."""

from __future__ import annotations

import time

import pytest

from flowqueue import cancel, get_run, resume, signal, start_flow
from flowqueue.errors import (
    InvalidIdentifier,
    InvalidSignal,
    PayloadTooLarge,
    RunAlreadyEnded,
    TriggerAlreadyUsed,
    UnknownRun,
    UnknownTrigger,
)
from flowqueue.model.events import Event
from flowqueue.model.ids import parse_stream_id
from flowqueue.model.reducer import StepStatus
from tests.worker_harness import Cluster

pytestmark = pytest.mark.e2e


def kinds(log: list[Event], step: str | None = None) -> list[str]:
    return [e.kind for e in log if step is None or e.step == step]


def awaiting(cluster: Cluster, run: str, step: str) -> None:
    def parked() -> bool:
        steps = get_run(run, app=cluster.app).steps
        return step in steps and steps[step].status == StepStatus.AWAITING

    cluster.wait_for(parked, f"{step} to await")


def trigger_of(cluster: Cluster, run: str, step: str) -> str:
    awaiting(cluster, run, step)
    info = get_run(run, app=cluster.app).steps[step].awaiting
    assert info is not None
    assert info.trigger_id
    return info.trigger_id


def test_a_sleep_resumes_once_after_its_time_and_replays_what_came_before(cluster):
    run = start_flow("nap", {"seconds": 1}, app=cluster.app)
    log = cluster.wait_terminal(run)
    assert kinds(log, "nap") == [
        "step.started", "step.once", "log", "step.await.time",
        "step.resumed", "step.started", "step.completed",
    ]  # fmt: skip
    slept = next(e for e in log if e.kind == "step.await.time")
    woke = next(e for e in log if e.kind == "step.resumed")
    assert woke.ts >= slept.ts.fromisoformat(slept.data["until"])
    once = next(e for e in log if e.kind == "step.once")
    assert log[-2].data["result"] == {"started": once.data["result"]}  # the recorded value
    started = [e for e in log if e.kind == "step.started"]
    assert [e.data["attempt"] for e in started] == [1, 1]  # a resume is not a new attempt
    assert log[-1].kind == "flow.completed"


def test_an_event_wait_wakes_on_a_matching_emit_only(cluster):
    run = start_flow(
        "wait-event", {"name": "paid", "match": {"order": "o-1"}, "timeout": 60}, app=cluster.app
    )
    awaiting(cluster, run, "wait_event")
    state = get_run(run, app=cluster.app).steps["wait_event"]
    assert state.awaiting is not None
    assert state.awaiting.match == {"order": "o-1"}
    assert signal("paid", {"order": "o-2"}, app=cluster.app) == 0
    assert signal("paid", {"order": "o-1", "amount": 5}, app=cluster.app) == 1
    log = cluster.wait_terminal(run)
    assert log[-2].data["result"] == {"payload": {"order": "o-1", "amount": 5}}
    resumed = [e for e in log if e.kind == "step.resumed"]
    assert [r.data["result"] for r in resumed] == [{"order": "o-1", "amount": 5}]
    # The timeout timer lost: nothing of this run is left in the timer sets.
    assert not [
        m
        for m in cluster.fq.store.client.zrange(cluster.fq.keys.timers, 0, -1)
        if run.encode() in m
    ]


def test_an_emit_in_another_run_wakes_the_waiter(cluster):
    run = start_flow("wait-event", {"name": "ready", "match": {"batch": 7}}, app=cluster.app)
    awaiting(cluster, run, "wait_event")
    start_flow("announce", {"name": "ready", "payload": {"batch": 7}}, app=cluster.app)
    log = cluster.wait_terminal(run)
    assert log[-2].data["result"] == {"payload": {"batch": 7}}


def test_an_event_emitted_before_the_wait_registers_is_not_missed(cluster):
    run = start_flow("two-waits", {"k": "a"}, app=cluster.app)
    awaiting(cluster, run, "two_waits")
    # Both at once: the step is still resuming from "first" when "second" is emitted.
    assert signal("first", {"k": "a", "n": 1}, app=cluster.app) == 1
    signal("second", {"k": "a", "n": 2}, app=cluster.app)
    log = cluster.wait_terminal(run)
    assert log[-2].data["result"] == [{"k": "a", "n": 1}, {"k": "a", "n": 2}]
    assert [e.data["msg"] for e in log if e.kind == "log"] == ["between the waits"]


def test_an_event_wait_times_out(cluster):
    run = start_flow("wait-event", {"name": "never", "timeout": 0.5}, app=cluster.app)
    log = cluster.wait_terminal(run)
    assert "step.await.timeout" in kinds(log)
    assert log[-2].data["result"] == {"timeout": True}
    assert signal("never", {}, app=cluster.app) == 0  # the waiter went with the timeout


def test_a_trigger_resumes_once_from_the_cli(cluster):
    run = start_flow("wait-trigger", {"timeout": 60}, app=cluster.app)
    trigger = trigger_of(cluster, run, "wait_trigger")
    assert trigger.startswith("trg_")
    assert len(trigger) > 30
    shown = cluster.flowqueue("show", run)
    assert f"waits for trigger {trigger}" in shown.stdout
    done = cluster.flowqueue("resume", trigger, "--data", '{"ok": true}')
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"resumed {run}"
    log = cluster.wait_terminal(run)
    assert log[-2].data["result"] == {"payload": {"ok": True}}
    again = cluster.flowqueue("resume", trigger, "--data", "{}")
    assert again.returncode == 1
    assert "already resumed" in again.stderr
    assert cluster.fq.store.read(run) == log  # the refused resume wrote nothing


def test_a_trigger_times_out_and_then_refuses_a_resume(cluster):
    run = start_flow("wait-trigger", {"timeout": 0.5}, app=cluster.app)
    trigger = trigger_of(cluster, run, "wait_trigger")
    log = cluster.wait_terminal(run)
    assert log[-2].data["result"] == {"timeout": True}
    with pytest.raises(TriggerAlreadyUsed, match="timed out"):
        resume(trigger, {"late": True}, app=cluster.app)


def test_bad_resumes_and_emits_write_nothing(cluster):
    client, keys = cluster.fq.store.client, cluster.fq.keys
    with pytest.raises(UnknownTrigger, match="unknown or expired"):
        resume("trg_not-a-real-one", {}, app=cluster.app)
    with pytest.raises(InvalidSignal, match="not valid"):
        signal("bad name!", {}, app=cluster.app)
    with pytest.raises(InvalidSignal, match="JSON"):
        signal("fine-name", {"when": object()}, app=cluster.app)
    with pytest.raises(PayloadTooLarge, match="limit"):  # too large: 413, on every way in
        signal("fine-name", {"blob": "x" * 2_000_000}, app=cluster.app)
    assert not client.exists(keys.signals("fine-name"))
    bad = cluster.flowqueue("signal", "fine-name", "--data", "{not json")
    assert bad.returncode == 2
    assert "not valid JSON" in bad.stderr
    assert not client.exists(keys.signals("fine-name"))


def test_cancel_stops_a_sleeping_run_and_its_timer(cluster):
    run = start_flow("nap", {"seconds": 60}, app=cluster.app)
    awaiting(cluster, run, "nap")
    timers = cluster.fq.store.client.zrange(cluster.fq.keys.timers, 0, -1)
    assert any(run.encode() in m for m in timers)
    done = cluster.flowqueue("cancel", run, "--reason", "customer left")
    assert done.returncode == 0, done.stderr
    log = cluster.wait_terminal(run)
    assert log[-1].kind == "flow.cancelled"
    assert log[-1].data == {"reason": "customer left"}
    timers = cluster.fq.store.client.zrange(cluster.fq.keys.timers, 0, -1)
    assert not any(run.encode() in m for m in timers)
    state = get_run(run, app=cluster.app)
    assert state.status == "cancelled"
    assert state.steps["nap"].status == StepStatus.CANCELLED
    with pytest.raises(RunAlreadyEnded, match="nothing to cancel"):
        cancel(run, app=cluster.app)


def test_cancel_drops_waiters_and_triggers(cluster):
    waiting = start_flow("wait-event", {"name": "gone", "match": {"x": 1}}, app=cluster.app)
    triggered = start_flow("wait-trigger", {}, app=cluster.app)
    trigger = trigger_of(cluster, triggered, "wait_trigger")
    awaiting(cluster, waiting, "wait_event")
    cancel(waiting, "test", app=cluster.app)
    cancel(triggered, "test", app=cluster.app)
    assert signal("gone", {"x": 1}, app=cluster.app) == 0
    with pytest.raises(TriggerAlreadyUsed, match="cancelled"):
        resume(trigger, {}, app=cluster.app)
    time.sleep(0.5)  # nothing may start after the cancel
    for run in (waiting, triggered):
        assert cluster.fq.store.read(run)[-1].kind == "flow.cancelled"


def test_cancel_of_an_unknown_run_is_a_clear_error(cluster):
    with pytest.raises(UnknownRun):
        cancel("0190a4e2-0000-7000-8000-000000000000", app=cluster.app)
    with pytest.raises(InvalidIdentifier):
        cancel("no such run!", app=cluster.app)


def test_replay_that_reaches_another_await_fails_the_run(cluster):
    log = cluster.wait_terminal(start_flow("fickle", {}, app=cluster.app))
    assert log[-1].kind == "flow.failed"
    assert log[-1].data["error"]["type"] == "NonDeterminismError"
    failed = next(e for e in log if e.kind == "step.failed")
    assert "same order" in failed.data["error"]["message"]


def test_await_events_are_in_order_on_the_lifecycle_feed(cluster):
    run = start_flow("nap", {"seconds": 0.2}, app=cluster.app)
    log = cluster.wait_terminal(run)
    ids = [parse_stream_id(e.id) for e in log]
    assert ids == sorted(ids)


def test_a_step_queued_before_the_cancel_never_starts(redis_server, tmp_path):
    cluster = Cluster(redis_server.url, tmp_path)  # no worker yet: the step stays queued
    try:
        run = start_flow("nap", {"seconds": 0.1}, app=cluster.app)
        assert cancel(run, "changed my mind", app=cluster.app) == ["nap"]
        cluster.start_worker(concurrency=1)
        broker = cluster.fq.store.client
        cluster.wait_for(lambda: broker.llen("celery") == 0, "the queued message to be taken")
        time.sleep(1)
        assert kinds(cluster.fq.store.read(run)) == ["flow.started", "flow.cancelled"]
    finally:
        cluster.close()


def test_cancel_while_a_retry_waits(cluster):
    run = start_flow("late-retry", {}, app=cluster.app)
    cluster.wait_for(
        lambda: "step.failed" in kinds(cluster.fq.store.read(run)), "the first failure"
    )
    cancel(run, app=cluster.app)
    time.sleep(3.5)  # past the retry's due time
    log = cluster.fq.store.read(run)
    assert log[-1].kind == "flow.cancelled"
    assert "step.retry" not in kinds(log)
