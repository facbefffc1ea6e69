"""Manual starts' input schema, re-runs and retry-from-failure, on real workers (the
session's cluster), a real API process and a real Redis. The ``mend`` flow
(tests/flows.py) fails at ``mend_gate`` until the test sets its key's flag."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from flowqueue import get_run, start_flow
from flowqueue.errors import RunNotFailed, UnknownRun
from flowqueue.runtime.client import rerun, retry
from tests.flows import MendInput, mend_flag
from tests.test_api import assert_problem
from tests.worker_harness import Cluster

pytestmark = pytest.mark.e2e


def ended(cluster: Cluster, run: str, status: str) -> list[Any]:
    """The run's log once the reducer reads ``status`` (a retried run ends twice)."""
    cluster.wait_for(lambda: get_run(run, app=cluster.app).status == status, f"{run} {status}")
    return cluster.fq.store.read(run)


def failed_run(cluster: Cluster) -> tuple[str, str]:
    key = uuid.uuid4().hex
    run = start_flow("mend", {"key": key}, app=cluster.app)
    ended(cluster, run, "failed")
    return run, key


def counters(cluster: Cluster) -> dict[str, int]:
    stats = cluster.fq.store.flow_stats("mend").model_dump()
    return {status: stats[status] for status in ("running", "completed", "failed")}


def test_the_flow_route_and_the_cli_give_the_entry_input_schema(api, cluster):
    schema = MendInput.model_json_schema()
    with api.client() as client:
        flow = client.get("/api/_flows/mend").json()
        assert flow["input_schema"] == schema
        assert [s["name"] for s in flow["steps"]] == ["mend_start", "mend_gate", "mend_end"]
        assert client.get("/api/_flows/on-ping").json()["input_schema"] is None  # no model
        assert_problem(client.get("/api/_flows/no-such-flow"), 404, "no-such-flow")
        documented = client.get("/openapi.json").json()["components"]["schemas"]["FlowDetail"]
        assert "input_schema" in documented["properties"]
    before = cluster.fq.store.list_runs("mend", limit=1000)
    shown = cluster.flowqueue("start", "mend", "--help-input")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == schema
    assert cluster.fq.store.list_runs("mend", limit=1000) == before  # started nothing


def test_a_rerun_starts_a_new_run_with_the_same_input_linked_both_ways(api, cluster):
    key = uuid.uuid4().hex
    cluster.fq.coordinator.client.set(mend_flag(key), 1)
    first = start_flow("mend", {"key": key, "note": "one"}, app=cluster.app)
    ended(cluster, first, "completed")

    by_api = by_cli = ""
    with api.client() as client:
        answer = client.post(f"/api/_flows/mend/runs/{first}/rerun")
        assert answer.status_code == 201, answer.text
        assert answer.json()["rerun_of"] == first
        by_api = answer.json()["run_id"]
    cli = cluster.flowqueue("rerun", first, "--wait")
    assert cli.returncode == 0, cli.stderr
    by_cli = cli.stdout.splitlines()[0]
    by_python = rerun(first, app=cluster.app)
    assert len({first, by_api, by_cli, by_python}) == 4

    for run in (by_api, by_cli, by_python):
        log = ended(cluster, run, "completed")
        assert log[0].data == {
            "input": {"key": key, "note": "one"},
            "trigger": {"kind": "rerun", "run_id": first},
            "rerun_of": first,
        }
        assert get_run(run, app=cluster.app).rerun_of == first
    notes = [e.data for e in cluster.fq.store.read(first) if e.kind == "flow.rerun"]
    assert notes == [{"rerun": by_api}, {"rerun": by_cli}, {"rerun": by_python}]
    state = get_run(first, app=cluster.app)
    assert (state.status, state.reruns) == ("completed", [by_api, by_cli, by_python])
    # `flowqueue show` says the link both ways, as the README has it.
    shown = cluster.flowqueue("show", first).stdout.splitlines()
    assert f"reruns   {by_api}, {by_cli}, {by_python}" in shown
    assert f"rerun of {first}" in cluster.flowqueue("show", by_cli).stdout.splitlines()
    # The old run's stream still ends: flow.rerun is a note, not its last change.
    with api.client() as client:
        terminal = next(e for e in cluster.fq.store.read(first) if e.kind == "flow.completed")
        after = client.get(f"/api/_flows/mend/runs/{first}/stream?after={terminal.id}")
        assert after.status_code == 204


def test_retry_resumes_a_failed_run_under_its_id_from_the_cli_and_the_api(api, cluster):
    by_cli, cli_key = failed_run(cluster)
    by_api, api_key = failed_run(cluster)
    before = counters(cluster)
    gate = get_run(by_cli, app=cluster.app).steps["mend_gate"]
    assert (gate.status, gate.attempts) == ("failed", 1)

    for key in (cli_key, api_key):
        cluster.fq.coordinator.client.set(mend_flag(key), 1)
    cli = cluster.flowqueue("retry", by_cli)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == f"retried {by_cli}: sent mend_gate again"
    with api.client() as client:
        answer = client.post(f"/api/_flows/mend/runs/{by_api}/retry")
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"run_id": by_api, "steps": ["mend_gate"]}

    for run, key in ((by_cli, cli_key), (by_api, api_key)):
        log = ended(cluster, run, "completed")
        kinds = [e.kind for e in log]
        assert (
            kinds.index("flow.failed") < kinds.index("flow.retried") < kinds.index("flow.completed")
        )
        assert log[0].kind == "flow.started"
        assert kinds.count("flow.started") == 1
        retried = next(e for e in log if e.kind == "flow.retried")
        assert retried.data == {"steps": ["mend_gate"]}
        state = get_run(run, app=cluster.app)
        gate = state.steps["mend_gate"]
        assert (gate.status, gate.attempts) == ("completed", 2)
        assert gate.result == {"mend.begun": {"key": key}}  # its recorded input
        assert state.steps["mend_end"].result == {"key": key, "attempt": 2}
        assert state.error is None
    after = counters(cluster)
    assert after["failed"] == before["failed"] - 2
    assert after["completed"] == before["completed"] + 2
    assert after["running"] == before["running"]


def test_a_retried_run_that_fails_again_reads_failed_and_can_be_retried_again(cluster):
    run, key = failed_run(cluster)
    assert retry(run, app=cluster.app) == ["mend_gate"]
    log = ended(cluster, run, "failed")
    assert [e.kind for e in log].count("flow.failed") == 2
    assert get_run(run, app=cluster.app).steps["mend_gate"].attempts == 2
    cluster.fq.coordinator.client.set(mend_flag(key), 1)
    assert retry(run, app=cluster.app) == ["mend_gate"]
    assert get_run(run, app=cluster.app).status == "running"  # read at once: running again
    ended(cluster, run, "completed")


def test_retry_of_a_run_that_is_not_failed_is_refused_and_writes_nothing(api, cluster):
    key = uuid.uuid4().hex
    cluster.fq.coordinator.client.set(mend_flag(key), 1)
    run = start_flow("mend", {"key": key}, app=cluster.app)
    ended(cluster, run, "completed")
    log = cluster.fq.store.read(run)
    with pytest.raises(RunNotFailed, match="it is completed"):
        retry(run, app=cluster.app)
    with api.client() as client:
        assert_problem(client.post(f"/api/_flows/mend/runs/{run}/retry"), 409, "completed")
    cli = cluster.flowqueue("retry", run)
    assert cli.returncode == 1
    assert len(cli.stderr.strip().splitlines()) == 1
    assert "completed" in cli.stderr
    assert cluster.fq.store.read(run) == log


def test_unknown_or_expired_runs_get_the_unknown_run_answer(api, cluster):
    nobody = str(uuid.uuid4())
    for call in (rerun, retry):
        with pytest.raises(UnknownRun, match="no run"):
            call(nobody, app=cluster.app)
    with api.client() as client:
        for what in ("rerun", "retry"):
            assert_problem(client.post(f"/api/_flows/mend/runs/{nobody}/{what}"), 404)
    for command in ("rerun", "retry"):
        cli = cluster.flowqueue(command, nobody)
        assert cli.returncode == 1, cli.stderr
        assert "no run" in cli.stderr
    # A run whose retention passed: its keys are gone (as Redis expires them).
    run, _ = failed_run(cluster)
    keys = cluster.fq.keys
    cluster.fq.coordinator.client.delete(keys.run_stream(run), keys.run_meta(run))
    for call in (rerun, retry):
        with pytest.raises(UnknownRun):
            call(run, app=cluster.app)
