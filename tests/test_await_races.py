"""The await claims under real thread races, 200 iterations each, on Redis and in memory:
resume against timeout, a trigger resumed twice, an emit against a wait's registration."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from flowqueue import create_app
from flowqueue.errors import TriggerAlreadyUsed
from flowqueue.model.awaits import Suspended
from flowqueue.model.events import EventKind, NewEvent
from flowqueue.model.header import StepHeader
from flowqueue.model.ids import new_run_id
from flowqueue.model.timers import TimerSpec
from flowqueue.runtime._awaits import StepAwaits
from flowqueue.runtime._standard_middleware import claim_event
from flowqueue.runtime.engine import Flowqueue, flowqueue_of

ITERATIONS = 200
FLOW, STEP = "wait-trigger", "wait_trigger"  # a test flow (tests/flows.py)


@pytest.fixture(params=["memory", "redis"])
def fq(request: pytest.FixtureRequest, settings) -> Iterator[Flowqueue]:
    url = "memory://" if request.param == "memory" else settings.redis_url
    app = create_app(settings.model_copy(update={"redis_url": url, "workers": "tests.flows"}))
    app.conf.task_always_eager = True  # a won resume runs the step inline
    yield flowqueue_of(app)
    flowqueue_of(app).close()


@pytest.fixture
def pair() -> Iterator[Callable[[Callable[[], Any], Callable[[], Any]], list[Any]]]:
    """Run two calls at the same instant (a barrier releases both, then a random pause
    of up to 1 ms each, so either may get there first) and return both outcomes: a
    result or the exception raised."""
    pool = ThreadPoolExecutor(2)

    def race(a: Callable[[], Any], b: Callable[[], Any]) -> list[Any]:
        barrier = threading.Barrier(2)

        def call(fn: Callable[[], Any]) -> Any:
            barrier.wait()
            time.sleep(random.uniform(0, 0.001))
            try:
                return fn()
            except BaseException as exc:  # Suspended is a BaseException
                return exc

        return [f.result() for f in [pool.submit(call, a), pool.submit(call, b)]]

    yield race
    pool.shutdown()


def running_step(fq: Flowqueue, flow: str = FLOW, step: str = STEP) -> StepHeader:
    """A fresh run whose step is running (begin_step won), as a worker would have it."""
    run = new_run_id()
    fq.coordinator.start_run(NewEvent(kind="flow.started", run_id=run, flow=flow), [step])
    header = StepHeader(run_id=run, flow=flow, step=step)
    assert fq.coordinator.begin_step(started(header), 60_000).decision == "run"
    return header


def started(header: StepHeader) -> NewEvent:
    return NewEvent(
        kind=EventKind.STEP_STARTED,
        run_id=header.run_id,
        flow=header.flow,
        step=header.step,
        data={"attempt": "$attempt"},
        meta={"attempt": "$attempt"},
    )


def suspend_on_trigger(fq: Flowqueue, header: StepHeader, timeout_ms: int) -> tuple[str, str]:
    """Register a trigger wait; returns (trigger id, its timeout timer)."""
    with pytest.raises(Suspended):
        StepAwaits(fq.connections, header, 1, {}, resumed=False).wait_for_trigger(
            timeout_ms, None, None
        )
    record = fq.coordinator.await_records(header.run_id, header.step)[f"{header.step}#1"]
    trigger = next(e for e in fq.store.read(header.run_id) if e.kind == "step.await.trigger")
    return trigger.data["trigger_id"], record.timer


def kinds(fq: Flowqueue, run: str) -> list[str]:
    return [e.kind for e in fq.store.read(run)]


def test_resume_and_timeout_at_the_same_instant_resolve_once(fq, pair):
    wins = {"resume": 0, "timeout": 0}
    for _ in range(ITERATIONS):
        header = running_step(fq)
        trigger, timeout = suspend_on_trigger(fq, header, 60_000)
        delivery = header.model_copy(update={"timer": timeout})  # the timeout's delivery

        def time_out(delivery: StepHeader = delivery) -> str:
            on_claim = claim_event(delivery)
            return fq.coordinator.begin_step(
                started(delivery), 60_000, timer=delivery.timer, on_claim=on_claim
            ).decision

        resumed, timed_out = pair(lambda t=trigger: fq.orchestrator.resume(t, {"ok": 1}), time_out)
        log = kinds(fq, header.run_id)
        if resumed == header.run_id:
            # A no-op either way (busy: the resumed step runs; the re-check finds it done).
            assert timed_out in ("stale", "done", "busy")
            assert "step.await.timeout" not in log
            wins["resume"] += 1
        else:
            assert isinstance(resumed, TriggerAlreadyUsed), resumed
            assert "timed out" in str(resumed)
            assert timed_out == "run"
            assert "step.resumed" not in log
            wins["timeout"] += 1
        assert log.count("step.resumed") + log.count("step.await.timeout") == 1
    assert sum(wins.values()) == ITERATIONS
    assert min(wins.values()) > 0, wins  # both orders really happened


def test_a_trigger_resumed_twice_at_once_resumes_once(fq, pair):
    for _ in range(ITERATIONS):
        header = running_step(fq)
        trigger, _ = suspend_on_trigger(fq, header, 60_000)
        outcomes = pair(
            lambda t=trigger: fq.orchestrator.resume(t, {"by": "a"}),
            lambda t=trigger: fq.orchestrator.resume(t, {"by": "b"}),
        )
        won = [o for o in outcomes if o == header.run_id]
        lost = [o for o in outcomes if isinstance(o, TriggerAlreadyUsed)]
        assert len(won) == 1, outcomes
        assert len(lost) == 1, outcomes
        assert "already resumed" in str(lost[0])
        log = fq.store.read(header.run_id)
        assert [e.kind for e in log].count("step.resumed") == 1
        assert log[-1].kind == "flow.completed"  # the winner ran the step (eagerly) once


def test_an_emit_racing_the_wait_registration_wakes_it(fq, pair):
    woken_by = {"lookback": 0, "waiter": 0}
    for i in range(ITERATIONS):
        header = running_step(fq, "wait-event", "wait_event")
        match = {"n": i}

        def wait(header: StepHeader = header, match: dict[str, int] = match) -> Any:
            return StepAwaits(fq.connections, header, 1, {}, resumed=False).wait_for_event(
                "tick", match, None
            )

        registered, (_, woken) = pair(wait, lambda m=match: fq.coordinator.signal("tick", m))
        if isinstance(registered, Suspended):
            assert len(woken) == 1, "the emit missed a registered waiter"
            assert TimerSpec.model_validate_json(woken[0]).run_id == header.run_id
            woken_by["waiter"] += 1
        else:
            assert registered == match
            assert woken == []
            woken_by["lookback"] += 1
    assert sum(woken_by.values()) == ITERATIONS
    assert min(woken_by.values()) > 0, woken_by  # both orders really happened
