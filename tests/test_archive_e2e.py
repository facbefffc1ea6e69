"""The archive end to end: a real ``celery -A flowqueue worker`` with
FLOWQUEUE_ARCHIVE_URL and a one-second retention, a real ``flowqueue api`` and the CLI.
Every way of reading a run gives the same JSON before its retention (from Redis) and
after it (from the archive); queries across runs find archived runs too."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flowqueue import start_flow
from tests.api_harness import ApiProcess
from tests.postgres import postgres_database as postgres_database
from tests.worker_harness import Cluster

pytestmark = pytest.mark.e2e
ORDER = {"items": [{"sku": "fig", "quantity": 1}], "card": "5555", "order_id": "a-1"}


@pytest.fixture(scope="module")
def archived(
    redis_server, tmp_path_factory, postgres_database: Callable[[], str]
) -> Iterator[tuple[Cluster, ApiProcess]]:
    folder = tmp_path_factory.mktemp("archived")
    retention = {f"{end}_retention_seconds": 1 for end in ("completed", "failed", "cancelled")}
    cluster = Cluster(redis_server.url, folder, archive_url=postgres_database(), **retention)
    cluster.start_worker(concurrency=2)
    api = ApiProcess(cluster.env, folder / "api.log")
    yield cluster, api
    api.stop()
    cluster.close()


def everything_read(cluster: Cluster, api: ApiProcess, flow: str, run: str) -> dict[str, Any]:
    """The run as the API (state, events page, CloudEvents, SSE stream) and the CLI (show,
    events) give it."""
    base = f"/api/_flows/{flow}/runs/{run}"
    with api.client() as http:
        state = http.get(base)
        page = http.get(f"{base}/events", params={"limit": 5})
        more = http.get(f"{base}/events", params={"after": page.json()["events"][2]["id"]})
        cloud = http.get(f"{base}/events", params={"format": "cloudevents"})
        stream = http.get(f"{base}/stream")  # ends after the terminal event
    for response in (state, page, more, cloud, stream):
        assert response.status_code == 200, response.text
    show = cluster.flowqueue("show", run, "--json")
    events = cluster.flowqueue("events", run)
    assert show.returncode == 0, show.stderr
    assert events.returncode == 0, events.stderr
    return {
        "state": state.json(),
        "page": page.json(),
        "more": more.json(),
        "cloudevents": cloud.json(),
        "stream": stream.text,
        "show": json.loads(show.stdout),
        "events": events.stdout.splitlines(),
    }


def gone_from_redis(cluster: Cluster, runs: list[str], timeout: float = 60.0) -> None:
    client, keys = cluster.fq.coordinator.client, cluster.fq.keys
    streams = [keys.run_stream(run) for run in runs]
    cluster.wait_for(lambda: not client.exists(*streams), "retention to delete the runs", timeout)


def test_an_archived_run_reads_the_same_from_the_api_and_the_cli(archived):
    cluster, api = archived
    runs = {
        "example-flow": start_flow("example-flow", {"x": 1}, app=cluster.app),
        "order": start_flow("order", ORDER, app=cluster.app),
        "refund": start_flow("refund", {"amount": 12}, app=cluster.app),
        "nap": start_flow("nap", {"seconds": 0.3}, app=cluster.app),
    }
    ended = cluster.wait_all(runs.values(), timeout=60)
    assert ended[runs["refund"]][-1].kind == "flow.failed"
    before = {flow: everything_read(cluster, api, flow, run) for flow, run in runs.items()}
    gone_from_redis(cluster, list(runs.values()))
    time.sleep(0.2)
    after = {flow: everything_read(cluster, api, flow, run) for flow, run in runs.items()}
    assert after == before

    # Lists and queries across runs still find them.
    with api.client() as http:
        listed = http.get("/api/_flows/order/runs").json()
        found = http.get("/api/_runs", params={"status": "failed", "error": "declined"}).json()
    assert runs["order"] in [run["run_id"] for run in listed["runs"]]
    assert [run["run_id"] for run in found["runs"]] == [runs["refund"]]
    with api.client() as http:
        metrics = http.get("/metrics").text.splitlines()
    assert "flowqueue_archive_waiting 0" in metrics  # every ended run copied
    assert "flowqueue_archive_oldest_wait_seconds 0.000" in metrics
    cli = cluster.flowqueue("runs", "--status", "failed", "--since", "1h", "--error", "declined")
    assert cli.returncode == 0, cli.stderr
    assert runs["refund"] in cli.stdout
    assert runs["order"] not in cli.stdout


def test_an_archived_run_can_be_rerun_but_not_retried_or_cancelled(archived):
    cluster, _ = archived
    run = start_flow("refund", {"amount": 5}, app=cluster.app)
    cluster.wait_terminal(run, timeout=60)
    gone_from_redis(cluster, [run])
    retried = cluster.flowqueue("retry", run)
    assert retried.returncode == 1
    assert "its retention passed and only the archive keeps it" in retried.stderr
    assert f"flowqueue rerun {run}" in retried.stderr
    cancelled = cluster.flowqueue("cancel", run)
    assert cancelled.returncode == 1
    assert "has ended already (archived)" in cancelled.stderr
    rerun = cluster.flowqueue("rerun", run)
    assert rerun.returncode == 0, rerun.stderr
    new = rerun.stdout.split()[0]
    first = cluster.wait_terminal(new, timeout=60)[0]
    assert first.data["trigger"] == {"kind": "rerun", "run_id": run}
    assert first.data["input"] == {"amount": 5}
