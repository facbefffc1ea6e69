"""End to end under stress and faults: concurrent joins, SIGKILLed workers, redelivery
while a step still runs."""

from __future__ import annotations

import time

import pytest

from flowqueue import start_flow
from flowqueue.model.events import Event
from tests.worker_harness import Cluster

pytestmark = pytest.mark.e2e


def step_kinds(log: list[Event], step: str) -> list[str]:
    return [e.kind for e in log if e.step == step]


def wait_for(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_join_stress_twenty_branches_twenty_runs(redis_server, tmp_path):
    cluster = Cluster(redis_server.url, tmp_path)
    try:
        cluster.start_worker(concurrency=4)
        cluster.start_worker(concurrency=4)
        runs = [
            start_flow("order-fanout", {"order_id": f"o{n}"}, app=cluster.app) for n in range(20)
        ]
        logs = cluster.wait_all(runs, timeout=180)
    finally:
        cluster.close()
    for run, log in logs.items():
        assert step_kinds(log, "pack").count("step.started") == 1, run
        assert step_kinds(log, "pack").count("step.completed") == 1, run
        assert [e.kind for e in log].count("flow.completed") == 1, run
        assert not [e for e in log if e.kind == "flow.failed"], run
        pack = next(e for e in log if e.kind == "step.completed" and e.step == "pack")
        assert pack.data["result"] == {"branches": list(range(20))}


def killed_mid_step(cluster: Cluster) -> list[Event]:
    """The log of a ``slow`` run whose worker was SIGKILLed mid-step, once another worker
    has finished it (the cluster is closed)."""
    try:
        doomed = cluster.start_worker(concurrency=1)
        run = start_flow("slow", {"seconds": 4}, app=cluster.app)
        cluster.started_step(run)
        doomed.kill()  # SIGKILL mid-step: no ack, no events
        cluster.start_worker(concurrency=1)
        return cluster.wait_terminal(run, timeout=60)
    finally:
        cluster.close()


def test_sigkilled_worker_step_runs_again_elsewhere(redis_server, tmp_path):
    cluster = Cluster(redis_server.url, tmp_path, visibility_timeout=3, step_lease_seconds=2)
    log = killed_mid_step(cluster)
    started = [e for e in log if e.kind == "step.started" and e.step == "slow_step"]
    assert [e.data["attempt"] for e in started] == [1, 2]
    assert started[0].data["worker"] != started[1].data["worker"]
    begins = [e.data["fields"]["attempt"] for e in log if e.kind == "log"]
    assert begins == [1, 2]  # the log shows both attempts
    assert step_kinds(log, "slow_step").count("step.completed") == 1
    assert step_kinds(log, "after_slow") == ["step.started", "step.completed"]
    assert [e.kind for e in log][-1] == "flow.completed"


def test_redelivery_while_the_step_runs_does_not_run_it_twice(redis_server, tmp_path):
    # The broker hands the unacked message to the second worker after 2 s while the first
    # still runs it (5 s); the live lease makes the copy wait, then find it done.
    cluster = Cluster(redis_server.url, tmp_path, visibility_timeout=2, step_lease_seconds=1)
    try:
        first = cluster.start_worker(concurrency=1)
        run = start_flow("slow", {"seconds": 5}, app=cluster.app)
        cluster.started_step(run)
        second = cluster.start_worker(concurrency=1)
        log = cluster.wait_terminal(run, timeout=60)
        wait_for(
            lambda: "running elsewhere" in first.log() + second.log(),
            timeout=10,
            what="the redelivered copy",
        )
    finally:
        cluster.close()
    assert step_kinds(log, "slow_step").count("step.started") == 1
    assert [e.kind for e in log].count("flow.completed") == 1
