"""Timers and awaits against real faults: a short broker visibility timeout, every worker
SIGKILLed while runs sleep and wait, and a Redis restart (AOF on) under sleeping runs."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowqueue import get_run, resume, signal, start_flow
from flowqueue.backend.redis.embedded import EmbeddedRedis
from flowqueue.model.events import TERMINAL_KINDS, Event
from flowqueue.model.reducer import StepStatus
from tests.worker_harness import Cluster

pytestmark = pytest.mark.e2e


def resolutions(log: list[Event]) -> Counter[str]:
    """How each await of a run ended (each must end exactly once)."""
    ends = ("step.resumed", "step.await.timeout")
    return Counter(str(e.data["key"]) for e in log if e.kind in ends)


AWAIT_KINDS = ("step.await.time", "step.await.event", "step.await.trigger")


def assert_once_each(log: list[Event]) -> None:
    """Every await ended exactly once, and the run ended exactly once."""
    begun = Counter(str(e.data["key"]) for e in log if e.kind in AWAIT_KINDS)
    assert all(n == 1 for n in begun.values()), begun
    assert resolutions(log) == begun, log
    assert sum(e.kind in TERMINAL_KINDS for e in log) == 1


def all_awaiting(cluster: Cluster, runs: list[str], step_of: dict[str, str]) -> None:
    def ready() -> bool:
        for run in runs:
            steps = get_run(run, app=cluster.app).steps
            step = steps.get(step_of[run])
            if step is None or step.status != StepStatus.AWAITING:
                return False
        return True

    cluster.wait_for(ready, "every run to await", timeout=60)


@pytest.fixture
def own_cluster(redis_server, tmp_path: Path) -> Iterator[Cluster]:
    group = Cluster(redis_server.url, tmp_path, visibility_timeout=6, timer_rehand_seconds=3)
    yield group
    group.close()


def test_a_sleep_longer_than_the_visibility_timeout_resumes_once(redis_server, tmp_path):
    cluster = Cluster(redis_server.url, tmp_path, visibility_timeout=5)
    try:
        cluster.start_worker(concurrency=2)
        run = start_flow("nap", {"seconds": 20}, app=cluster.app)
        log = cluster.wait_terminal(run, timeout=60)
        assert [e.kind for e in log].count("step.resumed") == 1
        assert [e.kind for e in log].count("step.started") == 2
        assert log[-1].kind == "flow.completed"
        time.sleep(6)  # a redelivery after the visibility timeout would append here
        assert cluster.fq.store.read(run) == log
    finally:
        cluster.close()


def test_timers_and_waits_survive_sigkill_of_every_worker(own_cluster):
    cluster = own_cluster
    cluster.start_worker(concurrency=2)
    cluster.start_worker(concurrency=2)
    app = cluster.app
    sleeps = [start_flow("nap", {"seconds": 3}, app=app) for _ in range(10)]
    waits = [
        start_flow("wait-event", {"name": "kick", "match": {"i": i}, "timeout": 60}, app=app)
        for i in range(5)
    ]
    lapses = [start_flow("wait-event", {"name": "never", "timeout": 3}, app=app) for _ in range(3)]
    triggers = [start_flow("wait-trigger", {"timeout": 60}, app=app) for _ in range(5)]
    step_of = {r: "nap" for r in sleeps} | {r: "wait_event" for r in waits + lapses}
    step_of |= {r: "wait_trigger" for r in triggers}
    runs = list(step_of)
    all_awaiting(cluster, runs, step_of)

    for worker in cluster.workers:
        worker.kill()
    # With no worker alive: wake the waits and resume the triggers.
    for i in range(5):
        assert signal("kick", {"i": i}, app=app) == 1
    for run in triggers:
        info = get_run(run, app=app).steps["wait_trigger"].awaiting
        assert info is not None
        assert info.trigger_id is not None
        resume(info.trigger_id, {"run": run}, app=app)

    cluster.start_worker(concurrency=2)
    cluster.start_worker(concurrency=2)
    logs = cluster.wait_all(runs, timeout=90)
    for log in logs.values():
        assert log[-1].kind == "flow.completed", log
        assert_once_each(log)
    assert all(logs[r][-2].data["result"] == {"timeout": True} for r in lapses)
    assert [logs[r][-2].data["result"] for r in triggers] == [
        {"payload": {"run": r}} for r in triggers
    ]


def test_sleeping_runs_survive_a_redis_restart(tmp_path):
    with EmbeddedRedis(appendonly=True) as server:
        cluster = Cluster(server.url, tmp_path, timer_rehand_seconds=3)
        try:
            cluster.start_worker(concurrency=2)
            # kombu's Redis transport can exit the worker when its broker connection drops
            # ("Unrecoverable error: AttributeError ... 'hostname'", kombu #582); in
            # production a process supervisor restarts it, and here so does the cluster.
            cluster.supervise()
            runs = [start_flow("nap", {"seconds": 4}, app=cluster.app) for _ in range(5)]
            all_awaiting(cluster, runs, dict.fromkeys(runs, "nap"))
            server.restart()  # the timers are in Redis (AOF); nothing else remembers them
            logs = cluster.wait_all(runs, timeout=90)
            for log in logs.values():
                assert log[-1].kind == "flow.completed"
                assert_once_each(log)
        finally:
            cluster.close()
