"""The HTTP API against a real uvicorn process, a real worker and a real Redis; SSE read
by an independent client (httpx-sse)."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from flowqueue.model.events import TERMINAL_KINDS
from tests.test_e2e_awaits import awaiting, trigger_of

pytestmark = pytest.mark.e2e
PROBLEM = "application/problem+json"


def sse_events(api, path: str, headers: dict[str, str] | None = None, stop_after: int = 0):
    """Every SSE event of ``path`` until the server ends the stream (or ``stop_after``)."""
    got = []
    with (
        api.client() as client,
        connect_sse(client, "GET", path, headers=dict(headers or {})) as source,
    ):
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for sse in source.iter_sse():
            if not sse.data:  # "retry:" alone dispatches no event (browsers ignore it)
                continue
            got.append(sse)
            if stop_after and len(got) >= stop_after:
                break
    return got


def assert_problem(response: httpx.Response, status: int, text: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert text in body["detail"]


def test_flows_list_steps_edges_and_counters(api):
    with api.client() as client:
        flows = {f["name"]: f for f in client.get("/api/_flows").json()}
    example = flows["example-flow"]
    assert [s["name"] for s in example["steps"]] == ["first_step", "second_step"]
    assert example["edges"] == [
        {"source": "first_step", "event": "step1.complete", "target": "second_step"}
    ]
    assert set(example["stats"]) >= {"running", "completed", "failed", "awaiting", "events"}


def test_start_read_and_stream_a_run(api, cluster):
    with api.client() as client:
        started = client.post("/api/_flows/example-flow/start", json={"name": "api"})
        assert started.status_code == 201, started.text
        run = started.json()["run_id"]
        streamed = sse_events(api, f"/api/_flows/example-flow/runs/{run}/stream")
        log = cluster.fq.store.read(run)
        assert [s.id for s in streamed] == [e.id for e in log]
        assert [s.json()["kind"] for s in streamed][-1] in TERMINAL_KINDS
        state = client.get(f"/api/_flows/example-flow/runs/{run}").json()
        assert state["status"] == "completed"
        page = client.get(f"/api/_flows/example-flow/runs/{run}/events", params={"limit": 2})
        assert [e["id"] for e in page.json()["events"]] == [e.id for e in log[:2]]
        rest = client.get(
            f"/api/_flows/example-flow/runs/{run}/events",
            params={"after": page.json()["next_after"]},
        )
        assert [e["id"] for e in rest.json()["events"]] == [e.id for e in log[2:]]
        listed = client.get("/api/_flows/example-flow/runs", params={"limit": 1}).json()
        assert listed["runs"][0]["run_id"] == run
        assert listed["next_before"] == run
        done = client.get("/api/_flows/example-flow/runs", params={"status": "completed"})
        assert run in [r["run_id"] for r in done.json()["runs"]]


def test_stream_resumes_after_last_event_id_and_ends_with_204(api, cluster):
    with api.client() as client:
        run = client.post("/api/_flows/nap/start", json={"seconds": 1}).json()["run_id"]
    first = sse_events(api, f"/api/_flows/nap/runs/{run}/stream", stop_after=2)
    rest = sse_events(
        api, f"/api/_flows/nap/runs/{run}/stream", headers={"Last-Event-ID": first[-1].id}
    )
    log = cluster.fq.store.read(run)
    assert [s.id for s in first + rest] == [e.id for e in log]
    with api.client() as client:
        ended = client.get(
            f"/api/_flows/nap/runs/{run}/stream", headers={"Last-Event-ID": log[-1].id}
        )
    assert ended.status_code == 204


def test_trigger_resume_over_http_once(api, cluster):
    with api.client() as client:
        run = client.post("/api/_flows/wait-trigger/start", json={}).json()["run_id"]
        trigger = trigger_of(cluster, run, "wait_trigger")
        resumed = client.post(f"/api/_flows/triggers/{trigger}", json={"ok": True})
        assert resumed.status_code == 200, resumed.text
        assert resumed.json() == {"run_id": run}
        assert_problem(client.post(f"/api/_flows/triggers/{trigger}", json={}), 409, "already")
        assert_problem(client.post("/api/_flows/triggers/trg_nope", json={}), 404, "unknown")
    log = cluster.wait_terminal(run)
    assert log[-2].data["result"] == {"payload": {"ok": True}}


def test_emit_over_http_wakes_the_waiter(api, cluster):
    with api.client() as client:
        body = {"name": "kick-api", "match": {"n": 7}}
        run = client.post("/api/_flows/wait-event/start", json=body).json()["run_id"]
        awaiting(cluster, run, "wait_event")
        sent = client.post("/api/_signals", json={"name": "kick-api", "payload": {"n": 7}})
        assert sent.status_code == 202, sent.text
        assert sent.json()["woken"] == 1
        assert_problem(client.post("/api/_signals", json={"name": "bad name!"}), 422)
        assert_problem(client.post("/api/_signals", json={"payload": 1}), 422)
    assert cluster.wait_terminal(run)[-1].kind == "flow.completed"


def test_cancel_over_http(api, cluster):
    with api.client() as client:
        run = client.post("/api/_flows/nap/start", json={"seconds": 60}).json()["run_id"]
        awaiting(cluster, run, "nap")
        url = f"/api/_flows/nap/runs/{run}/cancel"
        done = client.post(url, json={"reason": "no longer needed"})
        assert done.status_code == 200, done.text
        assert_problem(client.post(url), 409, "ended already")
        assert client.get(f"/api/_flows/nap/runs/{run}").json()["status"] == "cancelled"


def test_bad_requests_are_problems_and_write_nothing(api, cluster):
    store = cluster.fq.store
    before = store.read_feed()
    with api.client() as client:
        assert_problem(client.get("/api/_flows/no-such-flow/runs"), 404, "no-such-flow")
        assert_problem(client.post("/api/_flows/no-such-flow/start", json={}), 404)
        assert_problem(client.get("/api/_flows/nap/runs/0190a4e2-0000-7000-8000-0000"), 404)
        bad_json = client.post(
            "/api/_flows/nap/start",
            content=b"{nope",
            headers={"content-type": "application/json"},
        )
        assert_problem(bad_json, 422, "not valid JSON")
        big = b'{"x": "' + b"a" * 1_100_000 + b'"}'
        assert_problem(client.post("/api/_flows/nap/start", content=big), 413, "limit")
        assert_problem(client.post("/api/_signals", content=big), 413)
        assert_problem(client.get("/api/_flows/nap/runs", params={"limit": 0}), 422)
        bad_cursor = client.get("/api/_events/stream", params={"after": "not-an-id"})
        assert_problem(bad_cursor, 422, "event id")
    assert store.read_feed() == before


def follow_feed(api, path: str) -> tuple[str, list[dict[str, Any]]]:
    """A run of ``example-flow`` started once connected to feed stream ``path``, and the
    frames (parsed JSON) seen until its ``flow.completed``."""
    started: list[str] = []
    seen: list[dict[str, Any]] = []
    done = threading.Event()

    def watch() -> None:
        with api.client() as client, connect_sse(client, "GET", path) as source:
            for sse in source.iter_sse():
                if not sse.data:
                    continue
                seen.append(sse.json())  # the run's first events may come before its id
                kind = seen[-1].get("kind") or seen[-1].get("type", "").removeprefix("flowqueue.")
                run = seen[-1].get("run_id") or seen[-1].get("runid")
                if run in started and kind == "flow.completed":
                    done.set()
                    return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    time.sleep(0.5)  # connected: what follows arrives live
    with api.client() as client:
        started.append(client.post("/api/_flows/example-flow/start", json={}).json()["run_id"])
    thread.join(30)
    assert done.is_set(), seen[-3:]
    return started[0], seen


def test_feed_stream_sees_new_runs(api):
    run, seen = follow_feed(api, "/api/_events/stream")
    ours = [event["kind"] for event in seen if event["run_id"] == run]
    assert ours[0] == "flow.started"
    assert ours[-1] == "flow.completed"


def test_workers_queues_health_and_metrics(api):
    with api.client() as client:
        workers = client.get("/api/_workers").json()
        assert any(w["status"] == "online" and "example-flow" in w["flows"] for w in workers)
        queues = client.get("/api/_queues").json()
        assert any(q["name"] == "celery" for q in queues)
        assert client.get("/healthz").json() == {"status": "ok", "redis": "ok"}
        text = client.get("/metrics").text
        assert 'flowqueue_runs{flow="example-flow",status="completed"}' in text
        assert "flowqueue_sse_clients" in text
        count = next(
            line
            for line in text.splitlines()
            if line.startswith('flowqueue_step_duration_seconds_count{flow="example-flow"}')
        )
        assert int(count.split()[-1]) > 0
        assert client.get("/openapi.json").json()["info"]["title"] == "flowqueue"


def test_many_clients_one_run_each_see_everything_once(api, cluster):
    with api.client() as client:
        run = client.post("/api/_flows/nap/start", json={"seconds": 1}).json()["run_id"]
    results: list[list[str]] = []

    def follow() -> None:
        results.append([s.id for s in sse_events(api, f"/api/_flows/nap/runs/{run}/stream")])

    threads = [threading.Thread(target=follow) for _ in range(20)]
    for thread in threads:
        thread.start()
        time.sleep(0.01)
    for thread in threads:
        thread.join(30)
    log = [e.id for e in cluster.fq.store.read(run)]
    assert results == [log] * 20
