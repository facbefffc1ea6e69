"""Retention: an ended run expires after its status's retention, a run not ended never
does, and what lists and counts runs (the flow index, the lifecycle feed, the counters)
drops expired runs. Short retentions (1-3 s) on the suite's redis-server; whole runs go
in-process (Celery's eager mode) or through a real worker."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from flowqueue import cancel, get_run, resume, start_flow
from flowqueue.backend.redis.keys import Keys
from flowqueue.errors import TriggerAlreadyUsed, UnknownRun
from flowqueue.model.awaits import AwaitRecord
from flowqueue.model.events import EventKind, NewEvent
from flowqueue.model.header import StepHeader
from flowqueue.model.timers import TimerSpec
from flowqueue.runtime.engine import Flowqueue

from .worker_harness import Cluster

SECOND = 1_000  # ms
ORDER = {"order_id": "o-1", "items": [{"sku": "x", "quantity": 1}], "card": "4000123412341234"}


def run_keys(client: redis.Redis, keys: Keys, run: str) -> dict[str, int]:
    """Every key of the run that exists, with its PTTL (-1: none)."""
    found = client.keys(f"{keys.prefix}:run:{{{run}}}*")
    return {key.decode(): client.pttl(key) for key in found}


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting until {what}")
        time.sleep(0.05)


def feed_runs(client: redis.Redis, keys: Keys) -> set[str]:
    return {json.loads(fields[b"e"])["run_id"] for _, fields in client.xrange(keys.feed)}


def test_each_end_keeps_its_run_as_long_as_its_own_retention(make_app, redis_client):
    retention = {"completed": 1, "failed": 2, "cancelled": 3}
    app = make_app(**{f"{status}_retention_seconds": s for status, s in retention.items()})
    fq: Flowqueue = app.flowqueue
    completed = start_flow("order", ORDER, app=app)
    failed = start_flow("refund", {"amount": 1}, app=app)
    cancelled = start_flow("wait-trigger", {}, app=app)
    cancel(cancelled, "changed my mind", app=app)
    runs = {"completed": completed, "failed": failed, "cancelled": cancelled}

    for status, run in runs.items():
        assert get_run(run, app=app).status == status
        meta = redis_client.hgetall(fq.keys.run_meta(run))
        kept_ms = int(meta[b"expires_ms"]) - int(meta[b"ended_ms"])
        assert abs(kept_ms - retention[status] * SECOND) < 100, (status, kept_ms)
        keys = run_keys(redis_client, fq.keys, run)
        assert fq.keys.run_stream(run) in keys
        assert fq.keys.run_steps(run) in keys
        # Every key of the run expires with it; what only a live run needs is gone.
        assert all(0 < ttl <= retention[status] * SECOND for ttl in keys.values()), keys
        assert fq.keys.run_emits(run) not in keys

    for status, run in runs.items():
        wait_until(lambda run=run: not run_keys(redis_client, fq.keys, run), f"{status} is gone")
    with pytest.raises(UnknownRun):
        get_run(completed, app=app)


def test_a_run_not_ended_never_expires(make_app, redis_client):
    app = make_app(
        completed_retention_seconds=1, failed_retention_seconds=1, cancelled_retention_seconds=1
    )
    fq: Flowqueue = app.flowqueue
    awaiting_trigger = start_flow("wait-trigger", {}, app=app)
    awaiting_event = start_flow("wait-event", {"name": "never.sent"}, app=app)
    # A step mid-body: claimed, not finished (the coordinator calls a worker makes).
    running = "running-run"
    started = NewEvent(kind=EventKind.FLOW_STARTED, run_id=running, flow="slow")
    fq.coordinator.start_run(started, ["slow_step"])
    header = StepHeader(run_id=running, flow="slow", step="slow_step")
    claim = header.event(EventKind.STEP_STARTED, "$attempt", attempt="$attempt")
    assert fq.coordinator.begin_step(claim, lease_ms=60_000).decision == "run"
    live = [awaiting_trigger, awaiting_event, running]
    assert get_run(awaiting_trigger, app=app).steps["wait_trigger"].status == "awaiting"
    assert get_run(awaiting_event, app=app).steps["wait_event"].status == "awaiting"

    time.sleep(2.5)  # well past every retention

    for run in live:
        keys = run_keys(redis_client, fq.keys, run)
        assert fq.keys.run_stream(run) in keys
        assert all(ttl == -1 for ttl in keys.values()), keys
    assert fq.store.sweep(dry_run=True) == []
    listed = {
        r.run_id
        for flow in ("wait-trigger", "wait-event", "slow")
        for r in fq.store.list_runs(flow)
    }
    assert listed == set(live)
    assert fq.store.flow_stats("wait-trigger").running == 1

    # Once it ends, the run expires like any other.
    trigger = get_run(awaiting_trigger, app=app).steps["wait_trigger"].awaiting.trigger_id
    resume(trigger, {"go": True}, app=app)
    assert get_run(awaiting_trigger, app=app).status == "completed"
    assert all(ttl > 0 for ttl in run_keys(redis_client, fq.keys, awaiting_trigger).values())
    wait_until(lambda: not run_keys(redis_client, fq.keys, awaiting_trigger), "it expired")


def test_a_retention_of_zero_keeps_runs_forever(make_app, redis_client):
    app = make_app(completed_retention_seconds=0)
    fq: Flowqueue = app.flowqueue
    run = start_flow("example-flow", {"name": "k"}, app=app)
    assert get_run(run, app=app).status == "completed"
    keys = run_keys(redis_client, fq.keys, run)
    assert keys
    assert all(ttl == -1 for ttl in keys.values()), keys
    assert redis_client.zcard(fq.keys.flow_expiry("example-flow")) == 0
    assert b"expires_ms" not in redis_client.hgetall(fq.keys.run_meta(run))


def test_expired_runs_leave_the_index_the_feed_and_the_counters(make_app, redis_client):
    app = make_app(completed_retention_seconds=1, failed_retention_seconds=1)
    fq: Flowqueue = app.flowqueue
    keys = fq.keys
    done = [start_flow("example-flow", {"name": n}, app=app) for n in ("a", "b")]
    failed = start_flow("refund", {"amount": 2}, app=app)
    waiting = start_flow("wait-trigger", {}, app=app)
    assert {r.run_id for r in fq.store.list_runs("example-flow")} == set(done)
    assert fq.store.flow_stats("example-flow").completed == 2
    assert fq.store.flow_stats("refund").failed == 1
    assert {*done, failed, waiting} <= feed_runs(redis_client, keys)

    for run in (*done, failed):
        wait_until(lambda run=run: not run_keys(redis_client, keys, run), f"{run} expired")
    # Redis deleted the runs' keys; what lists and counts them across runs is still there
    # (nothing has swept yet: this app runs no pump)...
    index = keys.flow_runs("example-flow")
    assert len(redis_client.zrange(index, 0, -1)) == 2
    assert {*done, failed} <= feed_runs(redis_client, keys)

    # ... until listing a flow's runs, or reading its counters, drops that flow's first.
    assert fq.store.list_runs("example-flow") == []
    assert redis_client.zrange(index, 0, -1) == []
    assert not set(done) & feed_runs(redis_client, keys)
    assert redis_client.hget(keys.flow_stats("example-flow"), "completed") == b"0"
    refund = fq.store.flow_stats("refund")
    assert (refund.failed, refund.running) == (0, 0)
    assert failed not in feed_runs(redis_client, keys)
    # The run still waiting keeps its place in the index and the counters; the feed keeps
    # nothing older than the shortest retention, its events included.
    assert [r.run_id for r in fq.store.list_runs("wait-trigger")] == [waiting]
    assert fq.store.flow_stats("wait-trigger").running == 1
    oldest = time.time() * 1000 - SECOND
    assert all(int(i.split(b"-")[0]) >= oldest for i, _ in redis_client.xrange(keys.feed))
    assert redis_client.smembers(keys.expiring) == set()  # no flow has runs left to expire
    cancel(waiting, app=app)  # what it does next is in the feed again
    assert waiting in feed_runs(redis_client, keys)


def test_late_writes_neither_outlive_the_run_nor_bring_it_back(make_app, redis_client):
    app = make_app(completed_retention_seconds=1)
    fq: Flowqueue = app.flowqueue
    run = start_flow("example-flow", {"name": "late"}, app=app)
    assert get_run(run, app=app).status == "completed"
    header = StepHeader(run_id=run, flow="example-flow", step="first_step")
    coordinator = fq.coordinator

    def once(name: str) -> Any:
        record = AwaitRecord(kind="once", name=name, state="done", result="1")
        event = header.event(EventKind.STEP_ONCE, 1, key=f"first_step#{name}", name=name, result=1)
        return coordinator.record_once(f"first_step#{name}", record, event).value()

    # Before it expires, a late step's writes land, and a key made now expires with the rest.
    assert fq.keys.run_awaits(run) not in run_keys(redis_client, fq.keys, run)
    assert once("late") == 1
    fq.store.append(header.event(EventKind.LOG, 1, level="info", msg="still here"))
    keys = run_keys(redis_client, fq.keys, run)
    assert fq.keys.run_awaits(run) in keys
    assert all(0 < ttl <= SECOND for ttl in keys.values()), keys
    wait_until(lambda: not run_keys(redis_client, fq.keys, run), "it expired")

    # After: a duplicate delivery, a late timer, a finish, an emission, a once block, a log
    # line, a lease renewal and a cancel write nothing.
    step = fq.flows.flow("example-flow").step("first_step")
    fq.orchestrator.send(fq.orchestrator.message(run, "example-flow", step, {"name": "late"}))
    retry = TimerSpec(kind="retry", run_id=run, flow="example-flow", step="first_step", attempt=2)
    fq.orchestrator.fire(retry.member())
    completed = header.event(EventKind.STEP_COMPLETED, 1, result=None)
    assert coordinator.finish_step(completed, "completed", None).duplicate
    emit = header.event(EventKind.EMIT, 1, name="first.done", payload={})
    with pytest.raises(UnknownRun, match="is gone"):
        coordinator.emit(emit, {}, [])
    assert once("after") == 1  # the block's own result, recorded nowhere
    with pytest.raises(UnknownRun, match="is gone"):
        fq.store.append(header.event(EventKind.LOG, 1, level="info", msg="too late"))
    assert not coordinator.renew_lease(run, "first_step", 60_000)
    with pytest.raises(UnknownRun):
        cancel(run, app=app)
    assert run_keys(redis_client, fq.keys, run) == {}
    assert fq.store.list_runs("example-flow") == []
    assert fq.store.flow_stats("example-flow").completed == 0


def test_a_cancelled_awaits_trigger_cannot_touch_the_expired_run(make_app, redis_client):
    app = make_app(cancelled_retention_seconds=1)
    fq: Flowqueue = app.flowqueue
    run = start_flow("wait-trigger", {}, app=app)
    trigger = get_run(run, app=app).steps["wait_trigger"].awaiting.trigger_id
    cancel(run, app=app)
    wait_until(lambda: not run_keys(redis_client, fq.keys, run), "it expired")
    with pytest.raises(TriggerAlreadyUsed, match="cancelled"):
        resume(trigger, {"late": True}, app=app)
    assert run_keys(redis_client, fq.keys, run) == {}


def test_gc_dry_run_lists_expired_runs_and_gc_drops_them(redis_server, tmp_path):
    cluster = Cluster(redis_server.url, tmp_path, completed_retention_seconds=1)
    try:
        store, keys = cluster.fq.store, cluster.fq.keys
        raw = store.client
        runs = [f"gc-{i}" for i in range(3)]
        for run in runs:
            store.append(NewEvent(kind=EventKind.FLOW_STARTED, run_id=run, flow="order"))
            store.append(NewEvent(kind=EventKind.FLOW_COMPLETED, run_id=run, flow="order"))
        for run in runs:
            wait_until(lambda run=run: not run_keys(raw, keys, run), f"{run} expired")

        dry = cluster.flowqueue("gc", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        lines = dry.stdout.splitlines()
        assert lines[-1] == "would drop 3 expired runs"
        assert sorted(line.split()[0] for line in lines[:-1]) == runs
        assert all(" order " in line and " completed " in line for line in lines[:-1])
        assert len(raw.zrange(keys.flow_runs("order"), 0, -1)) == 3  # nothing dropped
        as_json = cluster.flowqueue("gc", "--dry-run", "--json")
        assert sorted(json.loads(line)["run_id"] for line in as_json.stdout.splitlines()) == runs

        swept = cluster.flowqueue("gc")
        assert swept.returncode == 0, swept.stderr
        assert swept.stdout.splitlines()[-1] == "dropped 3 expired runs"
        assert raw.zrange(keys.flow_runs("order"), 0, -1) == []
        assert raw.hget(keys.flow_stats("order"), "completed") == b"0"
        assert not set(runs) & feed_runs(raw, keys)
        assert cluster.flowqueue("gc").stdout.strip() == "dropped 0 expired runs"
    finally:
        cluster.close()


def test_gc_says_in_one_line_when_redis_is_unreachable(redis_server, tmp_path):
    cluster = Cluster(redis_server.url, tmp_path)
    try:
        cluster.env["FLOWQUEUE_REDIS_URL"] = "redis://127.0.0.1:9/0"  # nothing listens
        failed = cluster.flowqueue("gc", "--dry-run")
        assert failed.returncode == 1
        assert failed.stdout == ""
        assert failed.stderr.startswith("Error: cannot reach Redis at redis://127.0.0.1:9/0")
        assert len(failed.stderr.strip().splitlines()) == 1
    finally:
        cluster.close()


def test_a_worker_sweeps_expired_runs_and_keeps_the_ones_not_ended(redis_server, tmp_path):
    cluster = Cluster(
        redis_server.url,
        tmp_path,
        completed_retention_seconds=1,
        cancelled_retention_seconds=1,
        retention_sweep_seconds=0.5,
    )
    try:
        cluster.start_worker(concurrency=1)
        keys, raw = cluster.fq.keys, cluster.fq.store.client
        done = start_flow("order", ORDER, app=cluster.app)
        waiting = start_flow("wait-trigger", {}, app=cluster.app)
        log = cluster.wait_terminal(done)
        assert log[-1].kind == EventKind.FLOW_COMPLETED
        assert all(0 < ttl <= SECOND for ttl in run_keys(raw, keys, done).values())

        # The worker's sweep drops it from the index, the counters and the feed: this test
        # only reads the raw keys, so nothing else drops it.
        def swept() -> bool:
            return (
                not run_keys(raw, keys, done)
                and raw.zrange(keys.flow_runs("order"), 0, -1) == []
                and raw.hget(keys.flow_stats("order"), "completed") == b"0"
                and done not in feed_runs(raw, keys)
            )

        cluster.wait_for(swept, "the worker's sweep", timeout=30)
        assert get_run(waiting, app=cluster.app).steps["wait_trigger"].status == "awaiting"
        keys_of_waiting = run_keys(raw, keys, waiting)
        assert keys.run_stream(waiting) in keys_of_waiting
        assert all(ttl == -1 for ttl in keys_of_waiting.values()), keys_of_waiting
        assert len(raw.zrange(keys.flow_runs("wait-trigger"), 0, -1)) == 1
    finally:
        cluster.close()


def test_a_run_written_as_started_again_through_the_store_never_expires(make_store, redis_client):
    store = make_store(completed_retention_seconds=1, failed_retention_seconds=2)
    keys = store.commands.keys

    def event(kind: str) -> NewEvent:
        return NewEvent(kind=kind, run_id="again", flow="f")

    store.append(event(EventKind.FLOW_STARTED))
    store.append(event(EventKind.FLOW_COMPLETED))
    assert all(0 < ttl <= SECOND for ttl in run_keys(redis_client, keys, "again").values())
    store.append(event(EventKind.FLOW_FAILED))  # a second end: the failed run's retention
    assert all(SECOND < ttl <= 2 * SECOND for ttl in run_keys(redis_client, keys, "again").values())
    assert redis_client.zcard(keys.flow_expiry("f")) == 1
    store.append(event(EventKind.FLOW_STARTED))
    assert all(ttl == -1 for ttl in run_keys(redis_client, keys, "again").values())
    assert redis_client.zcard(keys.flow_expiry("f")) == 0
    time.sleep(2.5)
    assert [r.status for r in store.list_runs("f")] == ["running"]
    # When it ends and expires, the feed has none of its events left.
    store.append(event(EventKind.FLOW_COMPLETED))
    wait_until(lambda: not run_keys(redis_client, keys, "again"), "it expired")
    assert store.list_runs("f") == []
    assert "again" not in feed_runs(redis_client, keys)


def test_the_log_keeps_less_and_every_reader_gets_each_event_whole(make_app, redis_client):
    import asyncio

    app = make_app()
    fq: Flowqueue = app.flowqueue
    run = "echo-01a232fa-e59a-7408"
    fq.orchestrator.start_run("echo", {"me": run, "again": [run, f"{run}:{run}"]}, run_id=run)
    assert get_run(run, app=app).status == "completed"
    raw = redis_client.xrange(fq.keys.run_stream(run))
    assert all(run.encode() not in fields[b"e"] for _, fields in raw)  # kept once, in the key
    events = fq.store.read(run)
    assert [e.id for e in events] == [entry_id.decode() for entry_id, _ in raw]
    assert all(e.run_id == run and e.flow == "echo" for e in events)
    assert events[0].data == {
        "input": {"me": run, "again": [run, f"{run}:{run}"]},
        "trigger": {"kind": "manual"},
    }
    # The feed holds each lifecycle event as it was written, whole.
    whole = {
        fields[b"id"].decode(): json.loads(fields[b"e"])
        for _, fields in redis_client.xrange(fq.keys.feed)
    }
    for event in events:
        if event.id in whole:
            assert json.loads(event.to_json()) | whole[event.id] == json.loads(event.to_json())
    assert asyncio.run(fq.store.aio.read(run)) == events
    assert list(reversed(fq.store.read_reverse(run))) == events
