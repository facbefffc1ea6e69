"""The ``flowqueue`` command, run as a real subprocess against a real worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flowqueue import RunState

pytestmark = pytest.mark.e2e

ORDER = {"order_id": "cli-1", "items": [{"sku": "fig", "quantity": 1}], "card": "5555"}


def flowqueue(cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return cluster.command(str(Path(sys.executable).parent / "flowqueue"), *args)


def test_flows_prints_the_step_graph(cluster):
    out = flowqueue(cluster, "flows").stdout
    assert (
        "order\n  validate         entry\n    emits order.validated -> charge_card, reserve" in out
    )
    assert "ship             on stock.reserved + card.charged" in out
    as_json = json.loads(flowqueue(cluster, "flows", "--json").stdout)
    assert {f["name"] for f in as_json} >= {"example-flow", "order", "order-fanout", "refund"}


def test_start_wait_follows_the_run_and_exits_by_outcome(cluster):
    done = flowqueue(cluster, "start", "order", "--input", json.dumps(ORDER), "--wait")
    assert done.returncode == 0, done.stderr
    run_id, *timeline = done.stdout.splitlines()
    assert "flow.started" in timeline[0]
    assert "flow.completed" in timeline[-1]
    failed = flowqueue(cluster, "start", "refund", "--input", '{"amount": 3}', "--wait")
    assert failed.returncode == 1
    assert "flow.failed" in failed.stdout.splitlines()[-1]

    shown = flowqueue(cluster, "show", run_id)
    assert "status   completed" in shown.stdout
    state = RunState.model_validate_json(flowqueue(cluster, "show", run_id, "--json").stdout)
    assert state.steps["ship"].result["tracking"] == "trk-cli-1"
    lines = flowqueue(cluster, "events", run_id).stdout.splitlines()
    assert [json.loads(line)["kind"] for line in (lines[0], lines[-1])] == [
        "flow.started",
        "flow.completed",
    ]


def test_start_json_prints_events_as_json_lines(cluster):
    out = flowqueue(cluster, "start", "example-flow", "--wait", "--json", "--input", "{}").stdout
    first, *events = (json.loads(line) for line in out.splitlines())
    assert set(first) == {"run_id"}
    assert events[-1]["kind"] == "flow.completed"
    assert all(e["run_id"] == first["run_id"] for e in events)


def test_bad_input_exits_with_a_clear_message_and_writes_nothing(cluster):
    before = len(cluster.fq.store.list_runs("order", limit=1000))
    wrong = flowqueue(cluster, "start", "order", "--input", '{"order_id": 1}')
    assert wrong.returncode == 1
    assert "does not fit Order" in wrong.stderr
    not_json = flowqueue(cluster, "start", "order", "--input", "{order")
    assert not_json.returncode == 2
    assert "not valid JSON" in not_json.stderr
    unknown = flowqueue(cluster, "start", "no-such-flow")
    assert "unknown flow 'no-such-flow'; known flows:" in unknown.stderr
    assert len(cluster.fq.store.list_runs("order", limit=1000)) == before
    missing = flowqueue(cluster, "show", "no-such-run")
    assert missing.returncode == 1
    assert "no run 'no-such-run'" in missing.stderr


def test_runs_lists_newest_first_and_tail_follows_a_run(cluster):
    first = flowqueue(cluster, "start", "nap", "--input", '{"seconds": 0.5}').stdout.strip()
    second = flowqueue(cluster, "start", "nap", "--input", '{"seconds": 0.5}').stdout.strip()
    listed = flowqueue(cluster, "runs", "nap", "--limit", "2").stdout.splitlines()
    assert [line.split()[0] for line in listed] == [second, first]
    tailed = flowqueue(cluster, "tail", second)
    assert tailed.returncode == 0, tailed.stderr
    lines = tailed.stdout.splitlines()
    assert "flow.started" in lines[0]
    assert "step.resumed" in tailed.stdout
    assert "flow.completed" in lines[-1]
    as_json = flowqueue(cluster, "tail", first, "--json").stdout.splitlines()
    assert json.loads(as_json[-1])["kind"] == "flow.completed"
    missing = flowqueue(cluster, "tail", "0190a4e2-0000-7000-8000-000000000000")
    assert missing.returncode != 0
    assert "no run" in missing.stderr
    unknown = flowqueue(cluster, "runs", "no-such-flow")
    assert unknown.returncode != 0
    assert "no-such-flow" in unknown.stderr


def test_version_prints_the_installed_version_without_touching_redis():
    from importlib.metadata import version

    shown = subprocess.run(
        [str(Path(sys.executable).parent / "flowqueue"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"FLOWQUEUE_REDIS_URL": "redis://127.0.0.1:1/0", "PATH": "/usr/bin:/bin"},
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"flowqueue {version('flowqueue')}"
