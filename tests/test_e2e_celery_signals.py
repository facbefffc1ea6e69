"""What only Celery sees, on real workers: a revoked or terminated step, a hard time limit
and a SIGKILLed pool child are each in the run's log at once (the issue says within 2 s;
these tests allow 10 s), long before the step's 60 s lease could run out."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import pytest

from flowqueue import start_flow
from flowqueue.model.events import Event, NewEvent
from flowqueue.model.ids import stream_id_ms
from tests.worker_harness import Cluster

pytestmark = pytest.mark.e2e

LEASE_S = 60  # so the lease cannot be what records anything here
AT_ONCE_S = 10  # the generous bound for "at once" (the issue: 2 s)


@pytest.fixture
def cluster(redis_server, tmp_path) -> Iterator[Cluster]:
    # retry_attempts: the default policy would retry a revoked step, were it retriable.
    cluster = Cluster(redis_server.url, tmp_path, step_lease_seconds=LEASE_S, retry_attempts=3)
    try:
        cluster.start_worker(concurrency=1)
        yield cluster
    finally:
        cluster.close()


def first(cluster: Cluster, run: str, match: Callable[[Event], bool], what: str) -> Event:
    """The first event of the run's log that matches, waiting up to AT_ONCE_S for it."""
    found: list[Event] = []

    def seen() -> bool:
        found[:] = [e for e in cluster.fq.store.read(run) if match(e)]
        return bool(found)

    cluster.wait_for(seen, what, timeout=AT_ONCE_S)
    return found[0]


def failed(reason: str, attempt: int = 1) -> Callable[[Event], bool]:
    return lambda e: (
        e.kind == "step.failed" and e.data.get("reason") == reason and e.data["attempt"] == attempt
    )


def after_s(event: Event, since: float) -> float:
    """Seconds from ``since`` (wall clock) to the event (its id is the server's clock)."""
    return stream_id_ms(event.id) / 1000 - since


def test_a_record_from_outside_the_delivery_counts_once(make_coordinator):
    """What the main process records names the status and attempt it read: once the
    step moved on (claimed again after its lease ran out, or recorded already), nothing."""
    store, coordinator = make_coordinator()
    run, where = "r-outside", {"run_id": "r-outside", "flow": "f", "step": "s"}
    coordinator.start_run(NewEvent(kind="flow.started", run_id=run, flow="f"), ["s"])
    started = NewEvent(kind="step.started", **where, data={"attempt": "$attempt"})
    assert coordinator.begin_step(started, lease_ms=1).attempt == 1
    late = coordinator.step_progress(run, "s")
    assert late == "running 1"
    time.sleep(0.05)  # attempt 1's lease runs out: a redelivered copy claims attempt 2
    assert coordinator.begin_step(started, lease_ms=60_000).attempt == 2
    lost = NewEvent(kind="step.failed", **where, data={"reason": "worker_lost"})
    assert coordinator.finish_step(lost, "failed", None, expect=late).duplicate

    seen = coordinator.step_progress(run, "s")
    assert seen == "running 2"
    parked = {"timer": "t", "due_ms": 1, "expect": seen}
    assert not coordinator.finish_step(lost, "retry", None, **parked).duplicate
    assert coordinator.finish_step(lost, "retry", None, **parked).duplicate
    assert coordinator.step_progress(run, "s") == "retrying 2"
    kinds = [e.kind for e in store.read(run)]
    assert kinds == ["flow.started", "step.started", "step.started", "step.failed"]


def test_terminate_and_revoke_are_recorded_at_once_and_fail_the_run(cluster):
    running = start_flow("slow", {"seconds": 60}, app=cluster.app)
    cluster.started_step(running)
    # The one pool process is busy: this run's step waits in the broker.
    queued = start_flow("slow", {"seconds": 0}, app=cluster.app)
    cluster.app.control.revoke(f"{queued}:slow_step")
    worker = cluster.workers[0]
    cluster.wait_for(lambda: f"revoked: {queued}:slow_step" in worker.log(), "the revoke")

    since = time.time()
    cluster.app.control.revoke(f"{running}:slow_step", terminate=True)
    terminated = first(cluster, running, failed("terminated"), "the terminated step")
    revoked = first(cluster, queued, failed("revoked"), "the revoked step")
    latency = after_s(terminated, since)
    print(f"terminate recorded after {latency:.3f} s")
    assert latency < AT_ONCE_S

    for event in (terminated, revoked):
        assert event.data["error"]["type"] == "TaskRevokedError"
        assert event.data["will_retry"] is False  # a revoked task id never runs again
        assert event.data["max_attempts"] == 3  # the policy would have allowed more
    assert "SIGTERM" in terminated.data["error"]["message"]
    for run in (running, queued):
        log = cluster.wait_terminal(run, timeout=AT_ONCE_S)
        assert [e.kind for e in log if e.kind.startswith("flow.")] == [
            "flow.started",
            "flow.failed",
        ]
        assert [e.kind for e in log].count("step.failed") == 1
        assert not [e for e in log if e.step == "after_slow"]
    assert [e.kind for e in cluster.fq.store.read(queued) if e.step] == ["step.failed"]


def test_a_hard_time_limit_is_recorded_at_once_and_retried_per_policy(cluster):
    run = start_flow("hard-limit", {}, app=cluster.app)
    log = cluster.wait_terminal(run, timeout=30)
    steps = [e for e in log if e.step == "past_hard_limit" and e.kind != "log"]
    assert [(e.kind, e.data.get("attempt")) for e in steps] == [
        ("step.started", 1),
        ("step.failed", 1),
        ("step.retry", 2),
        ("step.started", 2),
        ("step.failed", 2),
    ]
    fails = [e for e in steps if e.kind == "step.failed"]
    assert [f.data["will_retry"] for f in fails] == [True, False]  # Retry(attempts=2)
    for started, fail in zip(steps[::3], fails, strict=True):
        assert fail.data["reason"] == "time_limit"
        assert fail.data["error"]["type"] == "TimeLimitExceeded"
        assert "time limit (1 s)" in fail.data["error"]["message"]
        # Killed 1 s after it began (Celery checks limits about once a second).
        beyond = (stream_id_ms(fail.id) - stream_id_ms(started.id)) / 1000 - 1
        print(f"hard time limit recorded {beyond:.3f} s after the limit")
        assert beyond < AT_ONCE_S
    assert log[-1].kind == "flow.failed"
    assert log[-1].data["error"]["type"] == "TimeLimitExceeded"


def test_a_sigkilled_pool_child_is_recorded_at_once_and_retried(cluster):
    run = start_flow("lost-child", {}, app=cluster.app)
    logged = first(cluster, run, lambda e: e.kind == "log", "the step's pid")
    pid = logged.data["fields"]["pid"]
    worker = cluster.workers[0]
    assert pid != worker.process.pid  # a pool child, not the worker's main process

    since = time.time()
    os.kill(pid, signal.SIGKILL)
    lost = first(cluster, run, failed("worker_lost"), "the lost child")
    latency = after_s(lost, since)
    print(f"lost pool child recorded after {latency:.3f} s")
    assert latency < AT_ONCE_S
    assert lost.data["error"]["type"] == "WorkerLostError"
    assert "SIGKILL" in lost.data["error"]["message"]
    assert lost.data["will_retry"] is True

    log = cluster.wait_terminal(run, timeout=AT_ONCE_S)
    steps = [(e.kind, e.data.get("attempt")) for e in log if e.step and e.kind != "log"]
    assert steps == [
        ("step.started", 1),
        ("step.failed", 1),  # once: Celery's requeued copy found the step parked
        ("step.retry", 2),
        ("step.started", 2),
        ("step.completed", None),
    ]
    assert log[-1].kind == "flow.completed"
    assert next(e for e in log if e.kind == "step.completed").data["result"] == 2
