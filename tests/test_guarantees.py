"""Guarantees that a one-line break once slipped past the suite (issue 10, "Tests that
could not fail"). Each test here fails when its guarantee is broken on purpose
(``make mutate-lua`` applies the Lua breaks; see the README's "Breaking it on purpose").

- An old retry timer delivered again after the step waits on a newer one is ``stale``.
- A completed step redelivered while a sibling step keeps the run active is ``done``
  (with the run still going, the "run ended" check cannot hide a broken "done" check).
- The payload limit sits exactly at ``max_payload_bytes``: at the limit accepted, one
  byte more refused with nothing written (stores, signals, the API's body reader).
"""

from __future__ import annotations

import os
import random
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from flowqueue import create_app, start_flow
from flowqueue.backend.coordinator import StepStart
from flowqueue.backend.redis.coordinator import RedisRunCoordinator
from flowqueue.backend.redis.keys import Keys
from flowqueue.backend.store import EventStore
from flowqueue.errors import PayloadTooLarge
from flowqueue.model.events import Event, NewEvent, encode_body
from flowqueue.model.ids import (
    STREAM_ID_PATTERN,
    _decimal_up_to,
    is_stream_id,
    new_run_id,
    stream_id_ms,
)
from flowqueue.model.reducer import reduce
from flowqueue.model.timers import TimerSpec, now_ms
from flowqueue.runtime.engine import Flowqueue, flowqueue_of
from tests.api_harness import ApiProcess
from tests.worker_harness import Cluster, own_database

FLOW = "f"
HOUR_MS = 3_600_000
LIMIT = 2048  # a small FLOWQUEUE_MAX_PAYLOAD_BYTES, so the edge is cheap to reach


@pytest.fixture
def coordinators(make_coordinator) -> tuple[EventStore, RedisRunCoordinator]:
    return make_coordinator(max_payload_bytes=LIMIT)


def step_event(run: str, step: str, kind: str, **data: Any) -> NewEvent:
    return NewEvent(kind=kind, run_id=run, flow=FLOW, step=step, data=data)


def begin(coordinator: RedisRunCoordinator, run: str, step: str, timer: str = "") -> StepStart:
    """One delivery of ``step``, as the step runner makes it (a timer's delivery appends
    step.retry when its claim wins)."""
    attempt = {"attempt": "$attempt"}
    started = NewEvent(
        kind="step.started", run_id=run, flow=FLOW, step=step, data=attempt, meta=attempt
    )
    on_claim = (
        NewEvent(kind="step.retry", run_id=run, flow=FLOW, step=step, data=attempt, meta=attempt)
        if timer
        else None
    )
    return coordinator.begin_step(started, 60_000, timer=timer, on_claim=on_claim)


def fail_for_retry(
    coordinator: RedisRunCoordinator, run: str, step: str, attempt: int, due_ms: int
) -> str:
    """Attempt ``attempt`` fails and the step waits for a retry; returns its timer."""
    timer = TimerSpec(kind="retry", run_id=run, flow=FLOW, step=step, attempt=attempt + 1)
    failed = step_event(run, step, "step.failed", attempt=attempt, will_retry=True)
    finish = coordinator.finish_step(
        failed, "retry", None, timer=timer.member(), due_ms=due_ms, arg={}
    )
    assert not finish.duplicate
    return timer.member()


def complete(coordinator: RedisRunCoordinator, run: str, step: str) -> Any:
    terminal = NewEvent(kind="flow.completed", run_id=run, flow=FLOW, data={"duration_ms": 0})
    return coordinator.finish_step(step_event(run, step, "step.completed"), "completed", terminal)


def start(coordinator: RedisRunCoordinator, run: str, steps: list[str]) -> None:
    assert coordinator.start_run(NewEvent(kind="flow.started", run_id=run, flow=FLOW), steps)


def step_kinds(store: EventStore, run: str, step: str) -> list[str]:
    return [e.kind for e in store.read(run) if e.step == step]


# -- the timer claim (begin_step.lua) ---------------------------------------------------------


def test_an_old_retry_timer_delivered_after_a_newer_one_is_stale(coordinators):
    store, coordinator = coordinators
    start(coordinator, "r", ["a"])
    assert begin(coordinator, "r", "a") == StepStart("run", attempt=1)
    first = fail_for_retry(coordinator, "r", "a", 1, now_ms())
    assert [t for t, _ in coordinator.take_due(0, 100, 60_000)] == [first]  # the pump hands it
    assert begin(coordinator, "r", "a", timer=first) == StepStart("run", attempt=2)
    second = fail_for_retry(coordinator, "r", "a", 2, now_ms() + HOUR_MS)

    # The first timer comes again (handed twice, or its message redelivered): its
    # claim is gone, so it must not start attempt 3 an hour early.
    assert begin(coordinator, "r", "a", timer=first).decision == "stale"
    assert coordinator.step_statuses("r") == {"a": "retrying"}
    assert step_kinds(store, "r", "a") == [
        "step.started",
        "step.failed",
        "step.retry",
        "step.started",
        "step.failed",
    ]
    assert coordinator.take_due(0, 100, 60_000) == []  # the newer timer is not due yet

    assert begin(coordinator, "r", "a", timer=second) == StepStart("run", attempt=3)
    assert begin(coordinator, "r", "a", timer=second).decision == "busy"  # claimed once
    assert step_kinds(store, "r", "a").count("step.retry") == 2


def test_a_claimed_retry_timer_delivered_again_while_its_attempt_runs_does_not_restart_it(
    coordinators,
):
    store, coordinator = coordinators
    start(coordinator, "r", ["a"])
    begin(coordinator, "r", "a")
    first = fail_for_retry(coordinator, "r", "a", 1, now_ms())
    assert begin(coordinator, "r", "a", timer=first).attempt == 2
    assert begin(coordinator, "r", "a", timer=first).decision == "busy"
    assert complete(coordinator, "r", "a").terminal
    assert begin(coordinator, "r", "a", timer=first).decision == "done"
    assert step_kinds(store, "r", "a").count("step.started") == 2


# -- a completed step redelivered while its run is still active ------------------------------


@pytest.mark.parametrize("sibling", ["queued", "running", "retrying"])
def test_a_completed_step_redelivered_while_a_sibling_is_active_is_done(coordinators, sibling):
    store, coordinator = coordinators
    start(coordinator, "r", ["a", "b"])
    assert begin(coordinator, "r", "a").decision == "run"
    if sibling != "queued":
        assert begin(coordinator, "r", "b").decision == "run"
    if sibling == "retrying":
        fail_for_retry(coordinator, "r", "b", 1, now_ms() + HOUR_MS)
    finished = complete(coordinator, "r", "a")
    assert (finished.duplicate, finished.terminal) == (False, False)  # b keeps the run going

    assert begin(coordinator, "r", "a").decision == "done"  # Celery redelivered a's message
    assert complete(coordinator, "r", "a").duplicate
    assert coordinator.step_statuses("r") == {"a": "completed", "b": sibling}
    assert step_kinds(store, "r", "a") == ["step.started", "step.completed"]
    assert not any(e.kind == "flow.completed" for e in store.read("r"))


# -- cancel, and a step resumed after an await -------------------------------------------------


def test_cancel_stops_running_queued_and_waiting_steps_for_good(coordinators):
    store, coordinator = coordinators
    start(coordinator, "r", ["running", "queued", "retrying"])
    begin(coordinator, "r", "running")
    begin(coordinator, "r", "retrying")
    timer = fail_for_retry(coordinator, "r", "retrying", 1, now_ms())
    cancelled = NewEvent(kind="flow.cancelled", run_id="r", flow=FLOW, data={"reason": "x"})
    outcome = coordinator.cancel("r", FLOW, cancelled)
    assert (outcome.outcome, outcome.queued) == ("cancelled", ["queued"])
    assert set(coordinator.step_statuses("r").values()) == {"cancelled"}
    assert coordinator.take_due(0, 100, 60_000) == []  # the retry timer went with the run

    assert complete(coordinator, "r", "running").duplicate  # its attempt ends after the cancel
    assert begin(coordinator, "r", "retrying", timer=timer).decision in ("done", "ended")
    assert begin(coordinator, "r", "queued").decision in ("done", "ended")
    assert [e.kind for e in store.read("r")][-1] == "flow.cancelled"


@pytest.fixture(params=["memory", "redis"])
def eager(request: pytest.FixtureRequest, settings) -> Iterator[Flowqueue]:
    """Steps run inline (Celery's eager mode) on either backend."""
    url = "memory://" if request.param == "memory" else settings.redis_url
    app = create_app(settings.model_copy(update={"redis_url": url, "workers": "tests.flows"}))
    app.conf.task_always_eager = True
    yield flowqueue_of(app)
    flowqueue_of(app).close()


@pytest.mark.parametrize("wait", ["trigger", "event"])
def test_a_step_resumed_after_an_await_goes_on_with_the_same_attempt(eager, wait):
    key = uuid.uuid4().hex
    if wait == "trigger":
        run = eager.orchestrator.start_run("wait-trigger", {})
        info = reduce(eager.store.read(run)).steps["wait_trigger"].awaiting
        assert info is not None
        assert info.trigger_id is not None
        eager.orchestrator.resume(info.trigger_id, {"ok": 1})
    else:
        run = eager.orchestrator.start_run("wait-event", {"name": "go", "match": {"k": key}})
        eager.orchestrator.signal("go", {"k": key})
    log = eager.store.read(run)
    assert [e.kind for e in log][-1] == "flow.completed"
    assert [e.data["attempt"] for e in log if e.kind == "step.started"] == [1, 1]
    assert {e.meta.get("attempt") for e in log if e.kind == "step.completed"} == {1}


# -- the payload limit's edge -----------------------------------------------------------------


def sized(run: str, size: int) -> NewEvent:
    """A log event whose stored encoding is exactly ``size`` bytes."""
    bare = len(encode_body(step_event(run, "s", "log", blob=""), 1 << 30))
    event = step_event(run, "s", "log", blob="x" * (size - bare))
    assert len(encode_body(event, 1 << 30)) == size
    return event


def test_an_event_exactly_at_the_limit_is_stored_and_one_byte_more_is_refused(make_store):
    store = make_store(max_payload_bytes=LIMIT)
    at_limit = sized("edge", LIMIT)
    stored = store.append(at_limit)
    assert store.read("edge") == [stored]
    assert stored.data == at_limit.data

    with pytest.raises(PayloadTooLarge, match="FLOWQUEUE_MAX_PAYLOAD_BYTES"):
        store.append(sized("edge", LIMIT + 1))
    with pytest.raises(PayloadTooLarge):
        store.append_many([sized("edge", LIMIT), sized("edge", LIMIT + 1)])
    with pytest.raises(PayloadTooLarge):
        store.append(sized("never", LIMIT + 1))
    assert store.read("edge") == [stored]
    assert store.count("never") == 0
    assert store.read_feed() == []  # a log event never reaches the feed; nothing else did


def test_a_signal_payload_exactly_at_the_limit_is_accepted_and_one_byte_more_is_refused(
    coordinators,
):
    _, coordinator = coordinators
    bare = len(b'{"blob":""}')

    def payload(size: int) -> dict[str, str]:
        return {"blob": "x" * (size - bare)}

    signal_id, woken = coordinator.signal("edge", payload(LIMIT))
    assert signal_id
    assert woken == []
    with pytest.raises(PayloadTooLarge, match="FLOWQUEUE_MAX_PAYLOAD_BYTES"):
        coordinator.signal("edge", payload(LIMIT + 1))


# -- the API's body limit ---------------------------------------------------------------------

TOKEN = "guarantees-" + "t" * 32


@pytest.fixture(scope="module")
def small_api(redis_server, tmp_path_factory) -> Iterator[tuple[ApiProcess, str, Keys]]:
    """``flowqueue api`` with a small body limit and no worker (emitting needs none)."""
    url, prefix = own_database(redis_server.url), f"g{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "FLOWQUEUE_REDIS_URL": url,
        "FLOWQUEUE_KEY_PREFIX": prefix,
        "FLOWQUEUE_WORKERS": "tests.flows",
        "FLOWQUEUE_MAX_PAYLOAD_BYTES": str(LIMIT),
        "FLOWQUEUE_API_TOKEN": TOKEN,
    }
    process = ApiProcess(env, tmp_path_factory.mktemp("api-edge") / "api.log")
    yield process, url, Keys(prefix)
    process.stop()


def body_of(name: str, size: int) -> bytes:
    """An emit body of exactly ``size`` bytes (JSON allows trailing whitespace)."""
    body = f'{{"name": "{name}", "payload": {{"n": 1}}}}'.encode()
    return body + b" " * (size - len(body))


@pytest.mark.e2e
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_api_body_exactly_at_the_limit_is_read_and_one_byte_more_is_413(small_api, chunked):
    api, url, keys = small_api
    client_db = redis.Redis.from_url(url)
    suffix = "chunked" if chunked else "sized"

    def post(body: bytes) -> httpx.Response:
        content: Any = iter([body[: len(body) // 2], body[len(body) // 2 :]]) if chunked else body
        with api.client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            return client.post(
                "/api/_signals", content=content, headers={"content-type": "application/json"}
            )

    try:
        exact = post(body_of(f"edge.exact.{suffix}", LIMIT))
        assert exact.status_code == 202, exact.text
        assert client_db.exists(keys.signals(f"edge.exact.{suffix}"))
        over = post(body_of(f"edge.over.{suffix}", LIMIT + 1))
        assert over.status_code == 413, over.text
        assert "FLOWQUEUE_MAX_PAYLOAD_BYTES" in over.text
        assert not client_db.exists(keys.signals(f"edge.over.{suffix}"))
    finally:
        client_db.close()


# -- found by `make mutate`: changes no test noticed -----------------------------------------


def test_run_ids_are_uuid7_with_the_creation_ms_and_random_bits():
    before = now_ms()
    ids = [uuid.UUID(new_run_id()) for _ in range(200)]
    after = now_ms()
    assert len(set(ids)) == len(ids)
    for value in ids:
        assert (value.version, value.variant) == (7, uuid.RFC_4122)
        assert before <= value.int >> 80 <= after  # the 48-bit Unix ms
    rand_a = {(value.int >> 64) & 0xFFF for value in ids}
    rand_b = {value.int & ((1 << 62) - 1) for value in ids}
    assert len(rand_b) == len(ids)  # 62 random bits each
    assert len(rand_a) > 100  # 12 random bits each: 200 draws hit well over 100 values
    assert any(a >> 11 for a in rand_a)  # its top and bottom bits are random too
    assert any(a & 1 for a in rand_a)
    assert any(b & 1 for b in rand_b)
    assert any(b >> 61 for b in rand_b)


def test_run_ids_keep_every_bit_of_the_ms():
    # An odd millisecond turns up within a second unless the id drops the lowest bit (a
    # fixed window of a few ms could see only even ones on a busy machine).
    deadline, odd = now_ms() + 1_000, False
    while not odd and now_ms() < deadline:
        odd = bool((uuid.UUID(new_run_id()).int >> 80) & 1)
    assert odd


def test_stream_id_ms_takes_a_bare_ms_too():
    assert stream_id_ms("1719667845123") == 1719667845123
    assert stream_id_ms("1719667845123-7") == 1719667845123


@pytest.mark.parametrize("limit", [0, 7, 9, 10, 19, 20, 99, 100, 255, 1000, 1009, 2**64 - 1])
def test_the_openapi_cursor_regex_matches_exactly_zero_to_the_limit(limit):
    # _decimal_up_to builds STREAM_ID_PATTERN at import, where mutmut cannot reach it.
    pattern = re.compile(_decimal_up_to(limit))
    width = len(str(limit))
    rng = random.Random(limit)
    numbers = {0, 1, limit, limit + 1, max(0, limit - 1), 10**width, limit * 10}
    numbers |= {rng.randrange(0, 10 ** (width + 1)) for _ in range(500)}
    for number in numbers:
        for text in (str(number), str(number).zfill(width)):
            fits = len(text) <= width and number <= limit
            assert bool(pattern.fullmatch(text)) is fits, (limit, text)


def test_the_openapi_cursor_pattern_agrees_with_is_stream_id():
    rng = random.Random(7)
    top = 2**64 - 1
    halves = [
        0,
        1,
        top - 1,
        top,
        top + 1,
        10**19,
        10**20,
        *(rng.randrange(2**66) for _ in range(50)),
    ]
    pattern = re.compile(STREAM_ID_PATTERN)
    for ms in halves:
        for seq in halves[:8]:
            text = f"{ms}-{seq}"
            assert bool(pattern.fullmatch(text)) is is_stream_id(text), text


# -- end to end: the same redeliveries through real workers -----------------------------------


def worker_logs(cluster: Cluster) -> str:
    return "".join(worker.log() for worker in cluster.workers)


def wait_until(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def of_step(log: list[Event], step: str, kind: str) -> list[Event]:
    return [e for e in log if e.step == step and e.kind == kind]


@pytest.mark.e2e
def test_a_real_worker_finds_an_old_retry_timer_stale(cluster):
    fq, flow, step = cluster.fq, "patient-retry", "patient_retry"
    run = start_flow(flow, {}, app=cluster.app)

    def timer(attempt: int) -> str:
        return TimerSpec(kind="retry", run_id=run, flow=flow, step=step, attempt=attempt).member()

    def failures() -> int:
        return len(of_step(fq.store.read(run), step, "step.failed"))

    wait_until(lambda: failures() == 1, "attempt 1 to fail")
    fq.orchestrator.fire(timer(2))  # its retry is an hour away: send it now
    wait_until(lambda: failures() == 2, "attempt 2 to fail")

    fq.orchestrator.fire(timer(2))  # the claimed timer, delivered again
    skipped = f"skipping {run}/{step}: stale"
    wait_until(
        lambda: (
            skipped in worker_logs(cluster)
            or len(of_step(fq.store.read(run), step, "step.started")) > 2
        ),
        "the old timer's delivery",
    )
    assert len(of_step(fq.store.read(run), step, "step.started")) == 2
    assert skipped in worker_logs(cluster)

    fq.orchestrator.fire(timer(3))
    log = cluster.wait_terminal(run)
    assert [e.data["attempt"] for e in of_step(log, step, "step.started")] == [1, 2, 3]
    assert len(of_step(log, step, "step.retry")) == 2
    assert [e.kind for e in log][-1] == "flow.completed"


@pytest.mark.e2e
def test_a_real_worker_does_not_rerun_a_completed_step_while_its_sibling_awaits(cluster):
    fq, flow = cluster.fq, "siblings"
    key = uuid.uuid4().hex
    run = start_flow(flow, {"key": key}, app=cluster.app)

    def ready() -> bool:
        log = fq.store.read(run)
        return bool(of_step(log, "quick_sibling", "step.completed")) and bool(
            of_step(log, "gated_sibling", "step.await.event")
        )

    wait_until(ready, "quick_sibling to complete while gated_sibling awaits")
    # Celery delivers the finished step's message again (same task id and header).
    quick = fq.flows.flow(flow).step("quick_sibling")
    fq.orchestrator.send(fq.orchestrator.message(run, flow, quick, {"key": key}))
    skipped = f"skipping {run}/quick_sibling: done"
    wait_until(
        lambda: (
            skipped in worker_logs(cluster)
            or len(of_step(fq.store.read(run), "quick_sibling", "step.started")) > 1
        ),
        "the redelivered message",
    )
    assert skipped in worker_logs(cluster)

    fq.orchestrator.signal("gate.open", {"key": key})
    log = cluster.wait_terminal(run)
    assert [e.kind for e in log if e.step == "quick_sibling"] == [
        "step.started",
        "step.completed",
    ]
    assert [e.kind for e in log].count("flow.completed") == 1
