"""Exporting lifecycle events as CloudEvents (flowqueue/runtime/exporter.py): in the feed's
order, at least once, from the kept position; a sink that fails gets the same batch
again; ``HttpSink`` speaks the CloudEvents HTTP binding to a real HTTP server; and
``flowqueue export URL``, the console script, resumes after a restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from flowqueue import start_flow
from flowqueue.errors import ConfigurationError, ExportFailed
from flowqueue.model.cloudevents import CloudEvent, from_cloudevent
from flowqueue.model.events import LIFECYCLE_KINDS
from flowqueue.runtime.exporter import Exporter, HttpSink
from tests.worker_harness import ROOT


class Received:
    """A real HTTP server that takes CloudEvent POSTs (and answers ``status``)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any]] = []
        self.status = 202
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if received.status < 300:
                    received.requests.append((self.headers["Content-Type"], json.loads(body)))
                self.send_response(received.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for _, body in self.requests:
            out.extend(body if isinstance(body, list) else [body])
        return out


@pytest.fixture
def sink_server() -> Iterator[Received]:
    received = Received()
    yield received
    received.server.shutdown()


def export_all(exporter: Exporter) -> None:
    while exporter.export_once():
        pass


def test_every_lifecycle_event_goes_out_once_in_feed_order_from_the_kept_position(make_app):
    app = make_app()
    store = app.flowqueue.store
    runs = [start_flow("example-flow", {"name": str(n)}, app=app) for n in range(3)]
    got: list[CloudEvent] = []
    exporter = Exporter(store, got.extend, name="audit", batch=4)
    export_all(exporter)
    feed = store.read_feed()
    assert [from_cloudevent(e) for e in got] == [entry.event for entry in feed]
    assert {e.run_id for e in map(from_cloudevent, got)} == set(runs)
    assert exporter.position == feed[-1].id
    # a new exporter of the same name goes on where that one stopped
    again: list[CloudEvent] = []
    later = start_flow("example-flow", {"name": "later"}, app=app)
    export_all(Exporter(store, again.extend, name="audit"))
    assert {from_cloudevent(e).run_id for e in again} == {later}
    # another name starts from the beginning of the feed
    other: list[CloudEvent] = []
    export_all(Exporter(store, other.extend, name="warehouse"))
    assert len(other) == len(got) + len(again)


def test_a_sink_that_fails_gets_the_same_batch_again(make_app):
    app = make_app()
    start_flow("example-flow", {"name": "x"}, app=app)
    batches: list[list[str]] = []
    failing = True

    def sink(events: Sequence[CloudEvent]) -> None:
        batches.append([e.id for e in events])
        if failing:
            raise RuntimeError("the queue is down")

    exporter = Exporter(app.flowqueue.store, sink, name="flaky", batch=2)
    with pytest.raises(RuntimeError):
        exporter.export_once()
    assert exporter.position is None
    failing = False
    exporter.export_once()
    assert batches[0] == batches[1]
    assert exporter.position is not None


def test_run_pauses_after_a_failure_and_stops_when_told(make_app):
    app = make_app()
    start_flow("example-flow", {"name": "x"}, app=app)
    calls: list[float] = []

    def sink(events: Sequence[CloudEvent]) -> None:
        calls.append(time.monotonic())
        raise ExportFailed("no")

    stop = threading.Event()
    thread = threading.Thread(
        target=Exporter(app.flowqueue.store, sink, name="paused", poll_seconds=0.01).run,
        args=(stop,),
    )
    thread.start()
    time.sleep(1.5)
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert 1 <= len(calls) <= 2  # the pause after a failure is at least a second, not a poll


def test_http_sink_posts_structured_and_batched_cloudevents(make_app, sink_server):
    app = make_app()
    start_flow("example-flow", {"name": "é"}, app=app)
    store = app.flowqueue.store
    export_all(Exporter(store, HttpSink(sink_server.url), name="one"))
    one = sink_server.requests
    assert {content_type for content_type, _ in one} == {"application/cloudevents+json"}
    assert [from_cloudevent(body) for _, body in one] == [e.event for e in store.read_feed()]
    sink_server.requests = []
    export_all(Exporter(store, HttpSink(sink_server.url, batched=True), name="many", batch=3))
    assert {content_type for content_type, _ in sink_server.requests} == {
        "application/cloudevents-batch+json"
    }
    assert [from_cloudevent(e) for e in sink_server.events()] == [
        e.event for e in store.read_feed()
    ]


def test_http_sink_raises_on_a_refusal_or_no_server(sink_server):
    sink_server.status = 503
    event = CloudEvent(specversion="1.0", id="1-0", source="/flows/f/runs/r", type="flowqueue.x")
    with pytest.raises(ExportFailed, match="answered 503"):
        HttpSink(sink_server.url)([event])
    sink_server.server.shutdown()
    sink_server.server.server_close()
    with pytest.raises(ExportFailed, match="could not reach"):
        HttpSink(sink_server.url, timeout=2)([event])
    with pytest.raises(ConfigurationError, match="http://"):
        HttpSink("ftp://example.invalid/")


@pytest.mark.e2e
def test_the_export_command_posts_and_resumes_after_a_restart(cluster, sink_server):
    command = [str(Path(sys.executable).parent / "flowqueue"), "export", sink_server.url]
    command += ["--name", "e2e", "--batched"]

    def exporting() -> subprocess.Popen[str]:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for(run: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            kinds = [e["type"] for e in sink_server.events() if e["runid"] == run]
            if "flowqueue.flow.completed" in kinds:
                return
            time.sleep(0.05)
        raise AssertionError(f"no flow.completed of {run} exported: {sink_server.events()[-3:]}")

    first = exporting()
    run = start_flow("example-flow", {"name": "exported"}, app=cluster.app)
    wait_for(run)
    first.send_signal(signal.SIGTERM)
    out, _ = first.communicate(timeout=10)
    assert first.returncode == 0
    assert "stopped: exported up to feed position" in out
    before = len(sink_server.events())

    later = start_flow("example-flow", {"name": "after the restart"}, app=cluster.app)
    cluster.wait_terminal(later)
    second = exporting()
    wait_for(later)
    second.send_signal(signal.SIGTERM)
    second.communicate(timeout=10)
    ids = [(e["source"], e["id"]) for e in sink_server.events()]
    assert len(ids) == len(set(ids))  # a clean stop repeats nothing
    assert {e["runid"] for e in sink_server.events()[before:]} == {later}
    exported = [from_cloudevent(e) for e in sink_server.events() if e["runid"] == run]
    assert exported == [e for e in cluster.fq.store.read(run) if e.kind in LIFECYCLE_KINDS]
