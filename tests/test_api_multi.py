"""Two API processes and two workers: a client that follows a run on one API process,
drops and resumes on the other with Last-Event-ID gets the run's log exactly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flowqueue.model.events import NewEvent
from tests.api_harness import ApiProcess
from tests.test_api import sse_events
from tests.worker_harness import Cluster

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def deployment(redis_server, tmp_path_factory) -> Iterator[tuple[Cluster, ApiProcess, ApiProcess]]:
    logs = tmp_path_factory.mktemp("multi")
    cluster = Cluster(redis_server.url, logs)
    cluster.start_worker(concurrency=2)
    cluster.start_worker(concurrency=2)
    one, two = (
        ApiProcess(cluster.env, logs / "api1.log"),
        ApiProcess(cluster.env, logs / "api2.log"),
    )
    yield cluster, one, two
    one.stop()
    two.stop()
    cluster.close()


def test_reconnecting_to_another_api_process_loses_nothing(deployment):
    cluster, one, two = deployment
    with one.client() as client:
        run_id = client.post("/api/_flows/nap/start", json={"seconds": 1}).json()["run_id"]
    path = f"/api/_flows/nap/runs/{run_id}/stream"
    first = sse_events(one, path, stop_after=3)  # mid-run (it sleeps): the connection drops
    rest = sse_events(two, path, headers={"Last-Event-ID": first[-1].id})
    log = cluster.wait_terminal(run_id)
    assert [s.id for s in first + rest] == [e.id for e in log]
    assert [s.json() for s in first + rest] == [e.model_dump(mode="json") for e in log]


def test_backfill_of_five_thousand_events_is_complete(deployment):
    cluster, _, two = deployment
    run_id = "0190a4e2-5000-7000-8000-000000000000"
    event = {"run_id": run_id, "flow": "nap"}
    batch = [NewEvent(kind="flow.started", data={"input": {}}, **event)]
    batch += [NewEvent(kind="log", step="nap", data={"msg": f"{i}"}, **event) for i in range(4998)]
    batch.append(NewEvent(kind="flow.completed", **event))
    cluster.fq.store.append_many(batch)
    streamed = sse_events(two, f"/api/_flows/nap/runs/{run_id}/stream")
    assert len(streamed) == 5000
    assert [s.id for s in streamed] == [e.id for e in cluster.fq.store.read(run_id)]
