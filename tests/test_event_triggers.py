"""Start triggers by event: a signal starts one run of each flow whose entry step declares
``on_event`` its name (and still wakes the waits it matches); the entry input model is
the signal's schema, checked before anything is written; an idempotency key makes
signals and starts count once. Real workers (the session's cluster), a real API process
and a real Redis."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import httpx
import pytest

from flowqueue import create_app, get_run, signal, start_flow
from flowqueue.authoring.flows import FlowRegistry, StepDef
from flowqueue.errors import FlowDefinitionError, InvalidInput, InvalidSignal, PayloadTooLarge
from flowqueue.runtime.engine import flowqueue_of
from tests.helpers import fake_step
from tests.worker_harness import Cluster

pytestmark = pytest.mark.e2e
SIGNUP = "user.signed_up"
SUBSCRIBED = ("welcome", "crm-sync")  # workers/signups.py
CONCURRENT = 50
T = TypeVar("T")


def run_ids(cluster: Cluster, flow: str) -> set[str]:
    return {run.run_id for run in cluster.fq.store.list_runs(flow, limit=1000)}


def runs_of(
    cluster: Cluster, flows: tuple[str, ...] = (*SUBSCRIBED, "on-ping")
) -> dict[str, set[str]]:
    return {flow: run_ids(cluster, flow) for flow in flows}


def new_runs(cluster: Cluster, before: dict[str, set[str]]) -> dict[str, set[str]]:
    return {flow: run_ids(cluster, flow) - ids for flow, ids in before.items()}


def signal_count(cluster: Cluster, name: str) -> int:
    return int(cluster.fq.coordinator.client.xlen(cluster.fq.keys.signals(name)))


def awaiting(cluster: Cluster, run: str, step: str) -> None:
    def parked() -> bool:
        steps = get_run(run, app=cluster.app).steps
        return step in steps and steps[step].status == "awaiting"

    cluster.wait_for(parked, f"{step} to await")


def all_at_once(call: Callable[[int], T], count: int = CONCURRENT) -> list[T]:
    """``call(i)`` from ``count`` threads released together."""
    barrier = threading.Barrier(count)

    def released(i: int) -> T:
        barrier.wait(30)
        return call(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(released, range(count)))


def signup(user: str, plan: str = "free") -> dict[str, str]:
    return {"user_id": user, "email": f"{user}@example.com", "plan": plan}


def test_only_an_entry_step_may_start_on_an_event_and_the_registry_answers_by_name():
    with pytest.raises(FlowDefinitionError, match="not an entry step"):
        StepDef.from_task(fake_step(entry=False, on_event="a", subscribes=["b"]))
    with pytest.raises(FlowDefinitionError, match="on_event name"):
        StepDef.from_task(fake_step(on_event=["fine", "not fine!"]))
    registry = FlowRegistry(
        StepDef.from_task(fake_step(**options))
        for options in (
            {"flow": ["f", "g"], "on_event": "a"},
            {"name": "t.h", "step_name": "h", "flow": "h", "on_event": ["b", "a"]},
            {"name": "t.i", "step_name": "i", "flow": "i"},
        )
    )
    assert [graph.name for graph in registry.started_by("a")] == ["f", "g", "h"]
    assert [graph.name for graph in registry.started_by("b")] == ["h"]
    assert registry.started_by("c") == []
    info = registry.flow("h").info()
    assert info.on_event == ["b", "a"]
    assert info.steps[0].on_event == ["b", "a"]
    assert registry.flow("i").info().on_event == []


def test_a_signal_starts_one_run_of_each_flow_that_declares_it(cluster):
    before = runs_of(cluster)
    sent = signal(SIGNUP, signup("u-1", "pro"), app=cluster.app)
    assert sent == 0  # the number of waits woken, as before
    assert not sent.replayed
    assert set(sent.runs) == set(SUBSCRIBED)
    assert new_runs(cluster, before) == {
        "welcome": {sent.runs["welcome"]},
        "crm-sync": {sent.runs["crm-sync"]},
        "on-ping": set(),
    }
    for flow, run in sent.runs.items():
        log = cluster.wait_terminal(run)
        assert log[0].kind == "flow.started"
        assert log[0].data == {
            "input": signup("u-1", "pro"),
            "trigger": {"kind": "event", "name": SIGNUP, "signal_id": sent.signal_id},
        }
        assert log[-1].kind == "flow.completed", (flow, log)
    assert get_run(sent.runs["welcome"], app=cluster.app).steps["pick_tips"].result == "pro-tips"
    assert get_run(sent.runs["crm-sync"], app=cluster.app).state == {"contact": "crm-u-1"}

    # on_event takes a list: either name starts the flow, whatever the payload (no model).
    again = signal("ping.again", [1, "two"], app=cluster.app)
    assert list(again.runs) == ["on-ping"]
    assert cluster.wait_terminal(again.runs["on-ping"])[-1].kind == "flow.completed"
    assert get_run(again.runs["on-ping"], app=cluster.app).steps["on_ping"].result == [1, "two"]
    # A start by hand says so too.
    by_hand = start_flow("on-ping", {"x": 1}, app=cluster.app)
    assert cluster.wait_terminal(by_hand)[0].data["trigger"] == {"kind": "manual"}


def test_a_signal_still_wakes_the_waits_it_matches_as_it_starts_runs(cluster):
    key = uuid.uuid4().hex
    waiting = start_flow(
        "wait-event", {"name": "ping.sent", "match": {"k": key}, "timeout": 120}, app=cluster.app
    )
    awaiting(cluster, waiting, "wait_event")
    sent = signal("ping.sent", {"k": key}, app=cluster.app)
    assert sent.woken == 1
    assert list(sent.runs) == ["on-ping"]
    assert cluster.wait_terminal(waiting)[-2].data["result"] == {"payload": {"k": key}}
    assert cluster.wait_terminal(sent.runs["on-ping"])[-1].kind == "flow.completed"


def test_a_payload_that_does_not_fit_is_refused_with_422_and_writes_nothing(api, cluster):
    user = f"u-{uuid.uuid4().hex[:8]}"
    waiting = start_flow(
        "wait-event", {"name": SIGNUP, "match": {"user_id": user}, "timeout": 120}, app=cluster.app
    )
    awaiting(cluster, waiting, "wait_event")
    client = cluster.fq.coordinator.client
    keys = cluster.fq.keys
    before, signals = runs_of(cluster), signal_count(cluster, SIGNUP)
    waiters = client.hlen(keys.waiters(SIGNUP))
    bad = {"user_id": user, "email": "not-an-address"}
    body = {"name": SIGNUP, "payload": bad, "idempotency_key": f"key-{user}"}
    with api.client() as http:
        refused = http.post("/api/_signals", json=body)
        assert refused.status_code == 422, refused.text
        assert "SignUp" in refused.json()["detail"]
        with pytest.raises(InvalidInput, match="SignUp"):
            signal(SIGNUP, bad, app=cluster.app)
        with pytest.raises(InvalidSignal, match="idempotency key"):
            signal(SIGNUP, signup(user), idempotency_key="no spaces", app=cluster.app)
        # Nothing written: no run, no signal recorded, no wait woken, no key kept.
        assert new_runs(cluster, before) == {flow: set() for flow in before}
        assert signal_count(cluster, SIGNUP) == signals
        assert client.hlen(keys.waiters(SIGNUP)) == waiters
        assert not client.exists(keys.idempotency("signal", SIGNUP, f"key-{user}"))
        assert get_run(waiting, app=cluster.app).steps["wait_event"].status == "awaiting"

        # The same key with a payload that fits: the first time it is used.
        body["payload"] = good = signup(user)
        sent = http.post("/api/_signals", json=body)
        assert sent.status_code == 202, sent.text
    answer = sent.json()
    assert answer["woken"] == 1
    assert not answer["replayed"]
    assert set(answer["runs"]) == set(SUBSCRIBED)
    assert cluster.wait_terminal(waiting)[-2].data["result"] == {"payload": good}
    for run in answer["runs"].values():
        assert cluster.wait_terminal(run)[-1].kind == "flow.completed"


def test_a_signal_too_large_to_record_is_413_as_on_every_way_in(api, cluster):
    """A body within the API's limit whose record would pass FLOWQUEUE_MAX_PAYLOAD_BYTES
    is refused as too large (413, PayloadTooLarge), as a start or a rerun is, and writes
    nothing."""
    limit = cluster.settings.max_payload_bytes
    big = "x" * (limit - 60)  # the body fits; its record (name, id, envelope) does not
    before, signals = runs_of(cluster), signal_count(cluster, "ping.sent")  # starts on-ping
    with api.client() as http:
        refused = http.post("/api/_signals", json={"name": "ping.sent", "payload": big})
    assert refused.status_code == 413, refused.text[:300]
    with pytest.raises(PayloadTooLarge):
        signal("ping.sent", big, app=cluster.app)
    assert signal_count(cluster, "ping.sent") == signals
    assert new_runs(cluster, before) == {flow: set() for flow in before}


def test_fifty_concurrent_signals_with_one_key_start_one_run_per_flow(cluster):
    before, signals = runs_of(cluster), signal_count(cluster, SIGNUP)
    key = f"key-{uuid.uuid4().hex}"
    answers = all_at_once(
        lambda i: signal(SIGNUP, signup("u-50"), idempotency_key=key, app=cluster.app)
    )
    first = answers[0]
    assert {json.dumps(a.runs, sort_keys=True) for a in answers} == {
        json.dumps(first.runs, sort_keys=True)
    }
    assert {a.signal_id for a in answers} == {first.signal_id}
    assert sum(not a.replayed for a in answers) == 1
    assert set(first.runs) == set(SUBSCRIBED)
    assert new_runs(cluster, before) == {
        **{flow: {first.runs[flow]} for flow in SUBSCRIBED},
        "on-ping": set(),
    }
    assert signal_count(cluster, SIGNUP) == signals + 1
    entry = {"welcome": "send_welcome", "crm-sync": "add_contact"}
    for flow, run in first.runs.items():
        log = cluster.wait_terminal(run)
        assert log[-1].kind == "flow.completed"
        assert log[0].data["trigger"]["idempotency_key"] == key
        assert [e.kind for e in log if e.step == entry[flow]].count("step.started") == 1
    # Later, within the window: the same answer, nothing new.
    late = signal(SIGNUP, signup("u-50"), idempotency_key=key, app=cluster.app)
    assert (late.runs, late.signal_id, late.replayed) == (first.runs, first.signal_id, True)
    assert signal_count(cluster, SIGNUP) == signals + 1


def test_fifty_concurrent_signals_over_http_with_one_key_start_one_run_per_flow(api, cluster):
    before, signals = runs_of(cluster), signal_count(cluster, SIGNUP)
    body = {"name": SIGNUP, "payload": signup("u-http"), "idempotency_key": uuid.uuid4().hex}

    def post(i: int) -> httpx.Response:
        with api.client() as http:
            return http.post("/api/_signals", json=body)

    responses = all_at_once(post)
    assert {r.status_code for r in responses} == {202}, [r.text for r in responses]
    answers = [r.json() for r in responses]
    assert {json.dumps(a["runs"], sort_keys=True) for a in answers} == {
        json.dumps(answers[0]["runs"], sort_keys=True)
    }
    assert {a["signal_id"] for a in answers} == {answers[0]["signal_id"]}
    assert sum(not a["replayed"] for a in answers) == 1
    runs = answers[0]["runs"]
    assert set(runs) == set(SUBSCRIBED)
    assert new_runs(cluster, before) == {
        **{flow: {runs[flow]} for flow in SUBSCRIBED},
        "on-ping": set(),
    }
    assert signal_count(cluster, SIGNUP) == signals + 1
    for run in runs.values():
        assert cluster.wait_terminal(run)[-1].kind == "flow.completed"


def test_a_start_with_an_idempotency_key_starts_once_from_python_http_and_the_cli(api, cluster):
    before = run_ids(cluster, "on-ping")
    key = f"start-{uuid.uuid4().hex}"
    ids = all_at_once(
        lambda i: start_flow("on-ping", {"i": i}, idempotency_key=key, app=cluster.app)
    )
    assert len(set(ids)) == 1
    assert run_ids(cluster, "on-ping") - before == set(ids)
    log = cluster.wait_terminal(ids[0])
    assert log[0].data["trigger"] == {"kind": "manual", "idempotency_key": key}
    assert [e.kind for e in log].count("step.started") == 1

    with api.client() as http:
        headers = {"Idempotency-Key": f"{key}-http"}
        first = http.post("/api/_flows/on-ping/start", json={"n": 1}, headers=headers)
        again = http.post("/api/_flows/on-ping/start", json={"n": 2}, headers=headers)
        bad = http.post("/api/_flows/on-ping/start", json={}, headers={"Idempotency-Key": "a b"})
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert first.json()["run_id"] == again.json()["run_id"]
    assert bad.status_code == 422, bad.text

    started = [
        cluster.flowqueue("start", "on-ping", "--input", "{}", "--idempotency-key", f"{key}-cli")
        for _ in range(2)
    ]
    assert [s.returncode for s in started] == [0, 0], [s.stderr for s in started]
    assert started[0].stdout == started[1].stdout
    new = run_ids(cluster, "on-ping") - before
    assert new == {ids[0], first.json()["run_id"], started[0].stdout.strip()}


def test_the_cli_sends_a_signal_with_a_key_and_lists_what_starts_on_events(cluster):
    key = f"cli-{uuid.uuid4().hex}"
    sent = [
        cluster.flowqueue("signal", "ping.sent", "--data", "{}", "--idempotency-key", key)
        for _ in range(2)
    ]
    assert [s.returncode for s in sent] == [0, 0], [s.stderr for s in sent]
    first, second = (s.stdout.splitlines() for s in sent)
    assert first[0] == "sent ping.sent; woke 0 waiting steps"
    assert second[:2] == [
        "ping.sent was sent before with this idempotency key; nothing sent now",
        "it woke 0 waiting steps",
    ]
    [(word, flow, run)] = [line.split() for line in first[1:]]
    assert (word, flow) == ("started", "on-ping")
    assert second[2:] == [f"it started on-ping {run}"]  # the first call's run, not a new one
    assert cluster.wait_terminal(run)[-1].kind == "flow.completed"

    listed = cluster.flowqueue("flows")
    assert "started by signal user.signed_up" in listed.stdout
    assert "started by signal ping.sent, ping.again" in listed.stdout
    as_json = {f["name"]: f for f in json.loads(cluster.flowqueue("flows", "--json").stdout)}
    assert as_json["welcome"]["on_event"] == [SIGNUP]
    assert as_json["welcome"]["steps"][0]["on_event"] == [SIGNUP]
    assert as_json["welcome"]["steps"][1]["on_event"] == []


def test_the_api_lists_the_events_a_flow_starts_on(api):
    with api.client() as http:
        flows = {f["name"]: f for f in http.get("/api/_flows").json()}
    assert flows["crm-sync"]["on_event"] == [SIGNUP]
    assert flows["on-ping"]["on_event"] == ["ping.sent", "ping.again"]
    assert flows["order"]["on_event"] == []


def test_the_idempotency_window_is_a_setting(cluster):
    app = create_app(cluster.settings.model_copy(update={"idempotency_seconds": 1}))
    try:
        key = f"window-{uuid.uuid4().hex}"
        record = flowqueue_of(app).keys.idempotency("signal", "ping.sent", key)
        first = signal("ping.sent", {}, idempotency_key=key, app=app)
        assert 0 < cluster.fq.coordinator.client.pttl(record) <= 1000
        assert signal("ping.sent", {}, idempotency_key=key, app=app).runs == first.runs
        cluster.wait_for(lambda: not cluster.fq.coordinator.client.exists(record), "expiry", 15)
        later = signal("ping.sent", {}, idempotency_key=key, app=app)
        assert not later.replayed
        assert later.runs["on-ping"] != first.runs["on-ping"]
        for run in (first.runs["on-ping"], later.runs["on-ping"]):
            assert cluster.wait_terminal(run)[-1].kind == "flow.completed"
    finally:
        flowqueue_of(app).store.close()
