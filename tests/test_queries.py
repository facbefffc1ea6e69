"""Queries across runs (flowqueue/runtime/queries.py): correct, complete pages over
10,000 runs of three flows (logs written through the real store), by status, error text,
step, state and start time; the API's ``GET /api/_runs`` and ``flowqueue runs``."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from flowqueue import start_flow
from flowqueue.model.events import NewEvent
from flowqueue.model.ids import ms_to_datetime, new_run_id, stream_id_ms
from flowqueue.runtime.queries import RunQuery, query_runs

FLOWS = ["example-flow", "echo", "always-fails"]
RUNS = 10_000


def synthetic_run(store: Any, i: int) -> tuple[str, dict[str, Any]]:
    """Run ``i``'s log, appended in one call; what a query may ask of it."""
    run, flow = new_run_id(), FLOWS[i % 3]
    where = {"run_id": run, "flow": flow}
    status = "failed" if i % 5 == 0 else "running" if i % 5 == 1 else "completed"
    tier = "gold" if i % 11 == 0 else "silver"
    events = [NewEvent(kind="flow.started", **where, data={"input": i, "trigger": {}})]
    events.append(NewEvent(kind="state.set", **where, data={"key": "tier", "value": tier}))
    if i % 7 == 0:
        events.append(NewEvent(kind="step.started", **where, step="charge", data={"attempt": 1}))
    if status == "failed":
        message = f"card declined #{i}" if i % 2 == 0 else f"timed out #{i}"
        error = {"type": "PaymentError", "message": message}
        events.append(NewEvent(kind="flow.failed", **where, data={"error": error}))
    elif status == "completed":
        events.append(NewEvent(kind="flow.completed", **where, data={"result": i}))
    first = store.append_many(events)[0]
    facts = {"i": i, "flow": flow, "status": status, "tier": tier, "charge": i % 7 == 0}
    return run, {**facts, "started_ms": stream_id_ms(first.id)}


@pytest.fixture(scope="module")
def ten_thousand(redis_server: Any) -> Any:
    from flowqueue import Settings, create_app

    prefix = f"q{uuid.uuid4().hex[:12]}"
    app = create_app(
        Settings(redis_url=redis_server.url, key_prefix=prefix, workers="workers,tests.flows")
    )
    store = app.flowqueue.store
    runs = dict(synthetic_run(store, i) for i in range(RUNS))
    yield app, runs
    app.flowqueue.close()


def every_page(query: RunQuery, app: Any) -> list[str]:
    found: list[str] = []
    while True:
        page = query_runs(query, app=app)
        assert len(page.runs) <= query.limit
        found += [run.run_id for run in page.runs]
        if page.next_before is None:
            return found
        query = query.model_copy(update={"before": page.next_before})


def newest_first(runs: dict[str, dict[str, Any]], keep: Any) -> list[str]:
    chosen = [run for run, facts in runs.items() if keep(facts)]
    return sorted(chosen, key=lambda run: (runs[run]["started_ms"], run), reverse=True)


@pytest.mark.parametrize(
    ("query", "keep"),
    [
        (RunQuery(status="failed", error="CARD"), lambda f: f["status"] == "failed"
         and f["i"] % 2 == 0),
        (RunQuery(flows=["echo"], step="charge"), lambda f: f["flow"] == "echo" and f["charge"]),
        (
            RunQuery(status="completed", state_key="tier", state_value="gold",
                     has_state_value=True),
            lambda f: f["status"] == "completed" and f["tier"] == "gold",
        ),
        (RunQuery(flows=["example-flow", "always-fails"], status="running"),
         lambda f: f["flow"] != "echo" and f["status"] == "running"),
    ],
)  # fmt: skip
def test_pages_over_ten_thousand_runs_hold_every_match_once_in_order(ten_thousand, query, keep):
    app, runs = ten_thousand
    query = query.model_copy(update={"limit": 250})
    assert every_page(query, app) == newest_first(runs, keep)


def test_a_time_range_stops_at_its_start(ten_thousand):
    app, runs = ten_thousand
    ordered = sorted(runs.values(), key=lambda f: f["started_ms"])
    since = ms_to_datetime(ordered[RUNS // 2]["started_ms"])
    until = ms_to_datetime(ordered[-RUNS // 10]["started_ms"])
    query = RunQuery(since=since, until=until, status="failed", limit=1000)
    expected = newest_first(
        runs,
        lambda f: f["status"] == "failed" and since <= ms_to_datetime(f["started_ms"]) < until,
    )
    assert every_page(query, app) == expected
    first = query_runs(query, app=app)
    assert first.scanned < RUNS  # stopped at since, not at the end of the index


def test_a_page_that_scans_its_bound_says_where_to_go_on(ten_thousand):
    app, _ = ten_thousand
    query = RunQuery(error="no such text anywhere", limit=10)
    page = query_runs(query, app=app, scan=300)
    assert (page.runs, page.scanned) == ([], 300)
    assert page.next_before is not None


def test_a_state_filter_an_empty_range_and_a_time_without_a_zone(ten_thousand):
    app, _ = ten_thousand
    assert RunQuery.state_filter("tier") == {"state_key": "tier"}
    assert RunQuery.state_filter("tier=gold")["state_value"] == "gold"  # not JSON: the text
    assert RunQuery.state_filter('tier="gold"')["state_value"] == "gold"
    assert RunQuery.state_filter("n=1")["state_value"] == 1
    assert RunQuery.state_filter("a=b=c")["state_value"] == "b=c"
    with pytest.raises(ValueError, match="state_key"):
        RunQuery(state_value=1, has_state_value=True)
    now = ms_to_datetime(0)
    empty = query_runs(RunQuery(since=now + timedelta(hours=1), until=now), app=app)
    assert (empty.runs, empty.next_before, empty.scanned) == ([], None, 0)
    assert RunQuery(since=now.replace(tzinfo=None)).since == now


@pytest.mark.e2e
def test_the_api_and_the_cli_query_runs(api, cluster):
    failed = start_flow("refund", {"amount": 3}, app=cluster.app)
    done = start_flow("example-flow", {"name": "q"}, app=cluster.app)
    cluster.wait_terminal(failed)
    cluster.wait_terminal(done)
    error = cluster.fq.store.read(failed)[-1].data["error"]["message"]
    with api.client() as client:
        page = client.get("/api/_runs", params={"status": "failed", "error": error[:6]})
        assert page.status_code == 200, page.text
        assert failed in [run["run_id"] for run in page.json()["runs"]]
        assert done not in [run["run_id"] for run in page.json()["runs"]]
        both = client.get("/api/_runs", params={"flow": ["refund", "example-flow"], "limit": 1000})
        assert {failed, done} <= {run["run_id"] for run in both.json()["runs"]}
        text = client.get("/api/_runs", params={"state": "k=not json"})
        assert (text.status_code, text.json()["runs"]) == (200, [])
        naive = client.get("/api/_runs", params={"since": "2000-01-01T00:00:00", "limit": 1000})
        assert {failed, done} <= {run["run_id"] for run in naive.json()["runs"]}
        assert client.get("/api/_runs", params={"flow": "no-such-flow"}).status_code == 404
    flowqueue = str(Path(sys.executable).parent / "flowqueue")
    listed = cluster.command(flowqueue, "runs", "--status", "failed", "--since", "1h", "--json")
    assert listed.returncode == 0, listed.stderr
    assert failed in [json.loads(line)["run_id"] for line in listed.stdout.splitlines()]
    wrong = cluster.command(flowqueue, "runs", "--since", "yesterday")
    assert wrong.returncode == 2
    assert "neither a time ago" in wrong.stderr
    unknown = subprocess.run(
        [flowqueue, "runs", "--state", "k=not json"],
        env=cluster.env,
        capture_output=True,
        text=True,
    )
    assert (unknown.returncode, unknown.stdout) == (0, "")
