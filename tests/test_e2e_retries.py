"""Retries on real workers: giving up, time limits, and timers that outlive every worker.
The example flaky call and its backoff run in ``tests/test_examples.py``."""

from __future__ import annotations

import pytest

from flowqueue import start_flow
from flowqueue.model.events import Event
from tests.worker_harness import Cluster

pytestmark = pytest.mark.e2e


def kinds(log: list[Event], step: str) -> list[str]:
    return [e.kind for e in log if e.step == step]


def test_exhausted_retries_fail_the_run(cluster):
    log = cluster.wait_terminal(start_flow("always-fails", {}, app=cluster.app))
    failed = [e.data for e in log if e.kind == "step.failed"]
    assert [(f["attempt"], f["will_retry"]) for f in failed] == [(1, True), (2, False)]
    assert [e.kind for e in log].count("step.retry") == 1
    assert log[-1].kind == "flow.failed"
    assert log[-1].data["error"]["message"] == "attempt 2"


@pytest.mark.parametrize(
    ("payload", "message"),
    [({}, "card reported stolen"), ({"attribute": True}, "bad account number")],
)
def test_non_retriable_errors_fail_at_once(cluster, payload, message):
    log = cluster.wait_terminal(start_flow("non-retriable", payload, app=cluster.app))
    assert kinds(log, "gives_up") == ["step.started", "step.failed"]
    assert log[-1].kind == "flow.failed"
    assert log[-1].data["error"]["message"] == message


def test_soft_time_limit_fails_the_attempt_with_a_clear_reason(cluster):
    log = cluster.wait_terminal(start_flow("too-slow", {}, app=cluster.app))
    failed = next(e for e in log if e.kind == "step.failed")
    assert failed.data["error"]["type"] == "SoftTimeLimitExceeded"
    assert "soft time limit (0.5 s)" in failed.data["error"]["message"]
    assert log[-1].kind == "flow.failed"


def test_retry_timer_survives_killing_every_worker(redis_server, tmp_path):
    # The dead worker may hold the retry's countdown message: the timer is handed again
    # once it is 2 s overdue (60 s by default).
    cluster = Cluster(redis_server.url, tmp_path, timer_rehand_seconds=2)
    try:
        first = cluster.start_worker(concurrency=1)
        run = start_flow("late-retry", {}, app=cluster.app)
        store = cluster.fq.store
        cluster.wait_for(
            lambda: any(e.kind == "step.failed" for e in store.read(run)), "the first failure"
        )
        first.kill()  # the only worker dies while the retry waits in Redis
        cluster.start_worker(concurrency=1)
        log = cluster.wait_terminal(run, timeout=60)
    finally:
        cluster.close()
    assert kinds(log, "late_retry").count("step.retry") == 1
    assert kinds(log, "late_retry").count("step.completed") == 1
    assert log[-1].kind == "flow.completed"
