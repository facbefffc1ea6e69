"""Run coordinator conformance: the Redis scripts and the in-memory coordinator agree on every
transition, and claims hold under real thread concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from flowqueue.backend.coordinator import Candidate
from flowqueue.backend.redis.coordinator import RedisRunCoordinator
from flowqueue.backend.store import EventStore
from flowqueue.errors import NonJsonPayload
from flowqueue.model.events import NewEvent

FLOW = "f"


@pytest.fixture
def pair(make_coordinator) -> tuple[EventStore, RedisRunCoordinator]:
    return make_coordinator()


def run_event(run: str, kind: str, **data: Any) -> NewEvent:
    return NewEvent(kind=kind, run_id=run, flow=FLOW, data=data)


def step_event(run: str, step: str, kind: str, **data: Any) -> NewEvent:
    return NewEvent(kind=kind, run_id=run, flow=FLOW, step=step, data=data)


def started(run: str, step: str) -> NewEvent:
    return NewEvent(
        kind="step.started",
        run_id=run,
        flow=FLOW,
        step=step,
        data={"attempt": "$attempt"},
        meta={"attempt": "$attempt"},
    )


def emit(
    coordinator: RedisRunCoordinator,
    run: str,
    step: str,
    name: str,
    cands: list[Candidate],
    **kw: Any,
):
    event = step_event(run, step, "emit", name=name, payload={"from": step})
    emitted = coordinator.emit(event, {"from": step}, cands, **kw)
    return emitted.event, emitted.claims


def finish(coordinator: RedisRunCoordinator, run: str, step: str, outcome: str = "completed"):
    kind = "step.completed" if outcome == "completed" else "step.failed"
    terminal = (
        run_event(run, "flow.completed", duration_ms="$duration_ms")
        if outcome == "completed"
        else run_event(run, "flow.failed", step=step)
    )
    return coordinator.finish_step(step_event(run, step, kind), outcome, terminal)  # type: ignore[arg-type]


def kinds(store: EventStore, run: str) -> list[str]:
    return [e.kind for e in store.read(run)]


def test_start_run_queues_entry_steps_once(pair):
    store, coordinator = pair
    assert coordinator.start_run(run_event("r", "flow.started", input=1), ["a", "b"]) is not None
    assert coordinator.start_run(run_event("r", "flow.started", input=2), ["a"]) is None
    assert coordinator.step_statuses("r") == {"a": "queued", "b": "queued"}
    assert kinds(store, "r") == ["flow.started"]


def test_begin_counts_attempts_and_fills_them_in(pair):
    store, coordinator = pair
    coordinator.start_run(run_event("r", "flow.started"), ["a"])
    first = coordinator.begin_step(started("r", "a"), lease_ms=60_000)
    assert (first.decision, first.attempt) == ("run", 1)
    busy = coordinator.begin_step(started("r", "a"), lease_ms=60_000)
    assert busy.decision == "busy"
    assert 0 < busy.busy_ms <= 60_000
    step_started = store.read("r")[-1]
    assert step_started.data["attempt"] == 1
    assert step_started.meta["attempt"] == 1


def test_expired_lease_lets_the_next_delivery_run_again(pair):
    store, coordinator = pair
    coordinator.start_run(run_event("r", "flow.started"), ["a"])
    assert coordinator.begin_step(started("r", "a"), lease_ms=1).attempt == 1
    time.sleep(0.01)  # the first delivery "died": its lease ran out
    assert coordinator.begin_step(started("r", "a"), lease_ms=60_000).attempt == 2
    assert coordinator.renew_lease("r", "a", 60_000)
    assert [e.data["attempt"] for e in store.read("r")[1:]] == [1, 2]


def test_finished_step_is_done_and_finishes_once(pair):
    store, coordinator = pair
    coordinator.start_run(run_event("r", "flow.started"), ["a"])
    coordinator.begin_step(started("r", "a"), lease_ms=60_000)
    first = finish(coordinator, "r", "a")
    assert (first.duplicate, first.terminal) == (False, True)
    assert finish(coordinator, "r", "a").duplicate
    assert coordinator.begin_step(started("r", "a"), lease_ms=60_000).decision == "done"
    assert not coordinator.renew_lease("r", "a", 60_000)
    log = store.read("r")
    assert [e.kind for e in log] == [
        "flow.started",
        "step.started",
        "step.completed",
        "flow.completed",
    ]
    assert isinstance(log[-1].data["duration_ms"], int)


def test_emit_claims_subscribers_once_and_joins_wait_for_all(pair):
    store, coordinator = pair
    coordinator.start_run(run_event("r", "flow.started"), ["a"])
    single = [Candidate("b", ["x"])]
    join = [Candidate("j", ["x", "y"])]
    _, claims = emit(coordinator, "r", "a", "x", single + join)
    assert [(c.step, c.inputs) for c in claims] == [("b", {"x": {"from": "a"}})]
    _, again = emit(coordinator, "r", "a", "x", single + join)
    assert again == []  # already claimed; the first payload of "x" stays
    _, joined = emit(coordinator, "r", "b", "y", join)
    assert [(c.step, c.inputs) for c in joined] == [("j", {"x": {"from": "a"}, "y": {"from": "b"}})]
    assert kinds(store, "r").count("emit") == 3


def test_republish_returns_still_queued_steps(pair):
    _, coordinator = pair
    coordinator.start_run(run_event("r", "flow.started"), ["a"])
    cands = [Candidate("b", ["x"])]
    emit(coordinator, "r", "a", "x", cands)
    _, claims = emit(coordinator, "r", "a", "x", cands, republish=True)
    assert [c.step for c in claims] == ["b"]
    coordinator.begin_step(started("r", "b"), lease_ms=60_000)
    _, claims = emit(coordinator, "r", "a", "x", cands, republish=True)
    assert claims == []  # b runs already: nothing to re-send


def test_run_completes_only_when_no_step_is_active(pair):
    store, coordinator = pair
    coordinator.start_run(run_event("r", "flow.started"), ["a"])
    coordinator.begin_step(started("r", "a"), lease_ms=60_000)
    emit(coordinator, "r", "a", "x", [Candidate("b", ["x"])])
    assert not finish(coordinator, "r", "a").terminal  # b is queued
    coordinator.begin_step(started("r", "b"), lease_ms=60_000)
    assert finish(coordinator, "r", "b").terminal
    assert kinds(store, "r")[-1] == "flow.completed"


def test_failure_ends_the_run_and_nothing_starts_after(pair):
    store, coordinator = pair
    coordinator.start_run(run_event("r", "flow.started"), ["a", "b"])
    coordinator.begin_step(started("r", "a"), lease_ms=60_000)
    coordinator.begin_step(started("r", "b"), lease_ms=60_000)
    assert finish(coordinator, "r", "a", "failed").terminal
    assert not finish(coordinator, "r", "b").terminal  # completes, but the run failed already
    _, claims = emit(coordinator, "r", "b", "x", [Candidate("c", ["x"])])
    assert claims == []
    assert coordinator.begin_step(started("r", "c"), lease_ms=60_000).decision == "ended"
    terminal = [k for k in kinds(store, "r") if k.startswith("flow.") and k != "flow.started"]
    assert terminal == ["flow.failed"]


def test_non_json_payload_writes_nothing(pair):
    store, coordinator = pair
    coordinator.start_run(run_event("r", "flow.started"), ["a"])
    event = step_event("r", "a", "emit", name="x", payload=None)
    with pytest.raises(NonJsonPayload):
        coordinator.emit(event, {"when": object()}, [Candidate("b", ["x"])])
    assert kinds(store, "r") == ["flow.started"]
    assert coordinator.step_statuses("r") == {"a": "queued"}


def hammer(workers: int, jobs: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(min(workers, len(jobs)))

    def run(job: Callable[[], Any]) -> Any:
        barrier.wait()
        return job()

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(run, jobs))


def test_concurrent_branch_emits_claim_the_join_exactly_once(pair):
    _, coordinator = pair
    branches = 8
    join = [Candidate("join", [f"b{i}" for i in range(branches)])]
    for n in range(20):
        run = f"race-{n}"
        coordinator.start_run(run_event(run, "flow.started"), [])
        results = hammer(
            branches,
            [
                (lambda i=i, run=run: emit(coordinator, run, f"s{i}", f"b{i}", join)[1])
                for i in range(branches)
            ],
        )
        claims = [c for claims in results for c in claims]
        assert len(claims) == 1, run
        assert sorted(claims[0].inputs) == sorted(f"b{i}" for i in range(branches))


def test_concurrent_last_finishes_complete_the_run_exactly_once(pair):
    store, coordinator = pair
    for n in range(20):
        run = f"fin-{n}"
        steps = [f"s{i}" for i in range(6)]
        coordinator.start_run(run_event(run, "flow.started"), steps)
        for s in steps:
            coordinator.begin_step(started(run, s), lease_ms=60_000)
        results = hammer(6, [(lambda s=s, run=run: finish(coordinator, run, s)) for s in steps])
        assert sum(r.terminal for r in results) == 1
        assert kinds(store, run).count("flow.completed") == 1
