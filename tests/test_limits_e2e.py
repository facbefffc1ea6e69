"""Hardening, end to end (real worker, real API process, real Redis, the console script):
bad input is refused with nothing written; a record no reader can decode is skipped with
a placeholder, never a stop; cursors beyond Redis's range are 422; whatever a write path
accepts reads back identically through the API, SSE and the CLI."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from httpx_sse import connect_sse
from hypothesis import HealthCheck, example, given, settings

from flowqueue.model.events import UNREADABLE
from flowqueue.model.ids import U64_MAX
from tests.json_strategies import JSON_VALUES, as_json_text, same_json
from tests.test_api import assert_problem
from tests.test_e2e_awaits import trigger_of

pytestmark = pytest.mark.e2e


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.fixture
def raw(cluster) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(cluster.url)
    yield client
    client.close()


def snapshot(raw: redis.Redis, cluster) -> dict[str, Any]:
    """What a refused request must leave unchanged: the keys and every stream's length."""
    keys = sorted(k.decode() for k in raw.keys(f"{cluster.prefix}:*"))
    lengths = {k: raw.xlen(k) for k in keys if raw.type(k) == b"stream" and "registry" not in k}
    return {"keys": [k for k in keys if "registry" not in k], "lengths": lengths}


def last_feed_position(raw: redis.Redis, cluster) -> str:
    newest = raw.xrevrange(cluster.fq.keys.feed, count=1)
    return newest[0][0].decode() if newest else "0-0"


class FeedWatcher:
    """An SSE client of the lifecycle feed, from ``after``, in a thread."""

    def __init__(self, api, after: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self._api, self._after = api, after
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        headers = {"Last-Event-ID": self._after}
        with (
            self._api.client() as client,
            connect_sse(client, "GET", "/api/_events/stream", headers=headers) as source,
        ):
            for sse in source.iter_sse():
                if sse.data:
                    self.events.append(sse.json())
                    self.ids.append(sse.id)
                if self._stop.is_set():
                    return

    def wait_for(self, run_id: str, kind: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e["run_id"] == run_id and e["kind"] == kind for e in self.events):
            assert time.monotonic() < deadline, f"the feed never showed {kind} of {run_id}"
            time.sleep(0.05)
        self._stop.set()


def test_deep_input_is_refused_on_every_way_in_and_the_feed_keeps_flowing(api, cluster, raw):
    watcher = FeedWatcher(api, last_feed_position(raw, cluster))
    time.sleep(0.3)
    trigger_run = None
    with api.client() as client:
        trigger_run = client.post("/api/_flows/wait-trigger/start", json={}).json()["run_id"]
        trigger = trigger_of(cluster, trigger_run, "wait_trigger")
        before = snapshot(raw, cluster)
        for levels in (65, 200, 3000):
            body = nested(levels)
            start = client.post("/api/_flows/example-flow/start", content=body)
            assert_problem(start, 422)
            resume = client.post(f"/api/_flows/triggers/{trigger}", content=body)
            assert_problem(resume, 422, "deeper than the limit of 64")
            emit = client.post("/api/_signals", content=f'{{"name": "deep", "payload": {body}}}')
            assert_problem(emit, 422)
        assert_problem(client.post("/api/_flows/example-flow/start", content=nested(65)), 422, "64")
        surrogate = client.post("/api/_flows/example-flow/start", content=b'{"a": "\\ud800"}')
        assert_problem(surrogate, 422)
        nan = client.post("/api/_flows/example-flow/start", content=b'{"a": NaN}')
        assert_problem(nan, 422)
        huge_int = client.post(
            "/api/_flows/example-flow/start", content=b'{"a": 1' + b"0" * 30 + b"}"
        )
        assert_problem(huge_int, 422, "64 bits")
        newline = client.post("/api/_signals", json={"name": "probe.nl\n", "payload": 1})
        assert_problem(newline, 422)
        assert snapshot(raw, cluster) == before  # nothing written anywhere
        # The trigger still works, and so does everything after the refusals.
        ok = client.post(f"/api/_flows/triggers/{trigger}", json={"fine": True})
        assert ok.status_code == 200, ok.text
        after = client.post("/api/_flows/example-flow/start", json={"name": "after"})
        run = after.json()["run_id"]
    assert not raw.keys(f"{cluster.prefix}:signals:probe.nl*")
    watcher.wait_for(run, "flow.completed")
    watcher.wait_for(trigger_run, "flow.completed")


CORRUPT: list[dict[str, bytes]] = [
    {"e": b"{not json"},
    {"e": nested(300).encode()},  # past every decoder's depth
    {"x": b"no event field"},
    {"e": b'"a string"'},
    {"e": b'{"kind": 1, "run_id": [], "flow": "f"}'},
    {"e": b'{"kind": "log", "run_id": "r", "flow": "f", "data": "not an object"}'},
    {"e": b"\xff\xfe not utf-8"},
]


def test_corrupt_records_are_skipped_with_a_placeholder_by_every_reader(api, cluster, raw):
    keys = cluster.fq.keys
    with api.client() as client:
        run = client.post("/api/_flows/example-flow/start", json={}).json()["run_id"]
    cluster.wait_terminal(run)
    bad_ids = [raw.xadd(keys.run_stream(run), fields).decode() for fields in CORRUPT]

    # The store and the reducer.
    events = cluster.fq.store.read(run)
    placeholders = [e for e in events if e.kind == UNREADABLE]
    assert [e.id for e in placeholders] == bad_ids
    assert all(e.data["key"] == keys.run_stream(run) for e in placeholders)
    with api.client() as client:
        state = client.get(f"/api/_flows/example-flow/runs/{run}")
        assert state.status_code == 200, state.text
        assert state.json()["status"] == "completed"
        assert state.json()["unreadable"] == bad_ids
        page = client.get(f"/api/_flows/example-flow/runs/{run}/events")
        assert page.status_code == 200, page.text
        assert [e["id"] for e in page.json()["events"] if e["kind"] == UNREADABLE] == bad_ids
    # SSE goes on past each of them (the run ended before they were written: keep_open).
    seen: list[str] = []
    with (
        api.client() as client,
        connect_sse(
            client, "GET", f"/api/_flows/example-flow/runs/{run}/stream?keep_open=true"
        ) as source,
    ):
        for sse in source.iter_sse():
            if sse.data and sse.json()["kind"] == UNREADABLE:
                seen.append(sse.id)
            if len(seen) == len(bad_ids):
                break
    assert seen == bad_ids
    # The CLI, as users run it.
    shown = cluster.flowqueue("events", run)
    assert shown.returncode == 0, shown.stderr
    kinds = [json.loads(line)["kind"] for line in shown.stdout.splitlines()]
    assert kinds.count(UNREADABLE) == len(bad_ids)
    assert kinds[-1] == UNREADABLE
    show = cluster.flowqueue("show", run)
    assert show.returncode == 0, show.stderr
    assert "status   completed" in show.stdout


def test_a_corrupt_feed_record_costs_other_clients_nothing(api, cluster, raw):
    keys = cluster.fq.keys
    start = last_feed_position(raw, cluster)
    bad = [
        raw.xadd(keys.feed, {"e": nested(300).encode(), "id": b"1-0"}).decode(),
        raw.xadd(keys.feed, {"e": b"{}"}).decode(),  # no event id
        raw.xadd(keys.feed, {"e": b'{"kind": "flow.started"}', "id": b"2-0"}).decode(),
    ]
    raw.publish(keys.feed_live, b"garbage that is no feed line")
    watchers = [FeedWatcher(api, start) for _ in range(2)]
    time.sleep(0.3)
    raw.publish(keys.feed_live, b"more garbage\nand\n\n")
    with api.client() as client:
        run = client.post("/api/_flows/example-flow/start", json={}).json()["run_id"]
    for watcher in watchers:
        watcher.wait_for(run, "flow.completed")
        assert watcher.ids[:3] == bad
        assert [e["kind"] for e in watcher.events[:3]] == [UNREADABLE] * 3
        assert len(set(watcher.ids)) == len(watcher.ids)  # nothing twice


@pytest.mark.parametrize(
    "cursor", ["99999999999999999999-0", f"{U64_MAX + 1}-0", f"0-{U64_MAX + 1}"]
)
def test_cursors_beyond_redis_range_are_422_on_every_route(api, cluster, cursor):
    with api.client() as client:
        run = client.post("/api/_flows/example-flow/start", json={}).json()["run_id"]
        base = f"/api/_flows/example-flow/runs/{run}"
        page = client.get(f"{base}/events", params={"after": cursor})
        assert_problem(page, 422, "64 bits")
        assert len(page.json()["detail"]) < 200  # says what to send, not a 900-char regex
        assert_problem(client.get(f"{base}/stream", params={"after": cursor}), 422)
        assert_problem(client.get(f"{base}/stream", headers={"Last-Event-ID": cursor}), 422)
        assert_problem(client.get("/api/_events/stream", params={"after": cursor}), 422)
        feed = client.get("/api/_events/stream", headers={"Last-Event-ID": cursor})
        assert_problem(feed, 422)
        # The very end of the id space is a valid cursor: nothing lies after it.
        end = client.get(f"{base}/events", params={"after": f"{U64_MAX}-{U64_MAX}"})
        assert end.status_code == 200, end.text
        assert end.json()["events"] == []
    cli = cluster.flowqueue("events", run, "--after", cursor)
    assert cli.returncode != 0
    assert "Traceback" not in cli.stderr


@given(value=JSON_VALUES)
@example(value=json.loads(nested(64)))  # accepted, at the limit: the readers are exercised
@example(value={"text": "é\U0001f600", "n": U64_MAX, "x": -0.0, "list": [None, True, 1.5]})
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_what_the_api_accepts_reads_back_through_every_reader(api, cluster, value):
    """A value sent as a run's input (then written by the step as state, a log field, an
    emission and its result) reads back identically from the API, SSE and the log; a
    refused one writes nothing."""
    with api.client() as client:
        runs_before = len(cluster.fq.store.list_runs("echo", limit=1000))
        started = client.post("/api/_flows/echo/start", content=as_json_text(value))
        if started.status_code != 201:
            assert started.status_code in (413, 422), started.text
            assert len(cluster.fq.store.list_runs("echo", limit=1000)) == runs_before
            return
        run = started.json()["run_id"]
        cluster.wait_terminal(run)
        state = client.get(f"/api/_flows/echo/runs/{run}").json()
    assert state["status"] == "completed", state
    assert same_json(state["input"], value)
    assert same_json(state["state"]["value"], value)
    assert same_json(state["steps"]["echo"]["result"], value)
    assert same_json(state["logs"][0]["fields"]["value"], value)
    assert same_json(state["emitted"][0]["payload"], value)
    with (
        api.client() as client,
        connect_sse(client, "GET", f"/api/_flows/echo/runs/{run}/stream") as source,
    ):
        first = next(sse for sse in source.iter_sse() if sse.data)
    assert same_json(first.json()["data"]["input"], value)


@pytest.mark.parametrize("levels", [1, 63, 64])
def test_the_cli_reads_back_what_it_accepted(cluster, levels):
    """The console script, exactly as users type it, at and below the depth limit."""
    value = json.loads(nested(levels)) if levels > 1 else {"a": "é\U0001f600", "n": U64_MAX}
    started = cluster.flowqueue("start", "echo", "--input", json.dumps(value), "--wait", "--json")
    assert started.returncode == 0, started.stderr
    run = json.loads(started.stdout.splitlines()[0])["run_id"]
    shown = cluster.flowqueue("show", run, "--json")
    assert shown.returncode == 0, shown.stderr
    state = json.loads(shown.stdout)
    assert same_json(state["input"], value)
    assert same_json(state["state"]["value"], value)
    refused = cluster.flowqueue("start", "echo", "--input", nested(65))
    assert refused.returncode != 0
    assert "Traceback" not in refused.stderr
