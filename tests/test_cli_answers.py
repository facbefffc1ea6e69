"""Clear answers instead of hangs and tracebacks, through the real ``flowqueue`` console
script (and the real API process): no live worker, ``--timeout``, Redis down or a bad
URL, unknown runs, and ``flowqueue runs`` across flows.

"Idle" is a cluster (own database and key prefix on the session's redis-server) where no
worker ever started; the session's ``cluster`` has a live one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowqueue.backend.redis.embedded import free_port
from flowqueue.runtime.workers import WorkerInfo, unserved
from tests.api_harness import ApiProcess
from tests.worker_harness import ROOT, Cluster

pytestmark = pytest.mark.e2e
FLOWQUEUE = str(Path(sys.executable).parent / "flowqueue")
ORDER = json.dumps({"order_id": "a-1", "items": [{"sku": "fig", "quantity": 1}], "card": "5555"})
NO_ORDER_WORKER = (
    "warning: no live worker serves step 'validate' of flow 'order' (nor 3 more of its "
    "steps); start one with: celery -A flowqueue worker"
)
UNKNOWN = "0190a4e2-0000-7000-8000-000000000000"


@pytest.fixture(scope="module")
def idle(redis_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    group = Cluster(redis_server.url, tmp_path_factory.mktemp("idle"))
    yield group
    group.close()


def lines_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# -- no live worker --------------------------------------------------------------------


def test_start_wait_with_no_worker_warns_then_times_out_naming_the_run(idle: Cluster) -> None:
    began = time.monotonic()
    waited = idle.flowqueue("start", "order", "--input", ORDER, "--wait", "--timeout", "2")
    took = time.monotonic() - began
    run_id, *timeline = waited.stdout.splitlines()
    assert waited.returncode == 124, waited.stderr
    assert "flow.started" in timeline[0]
    assert lines_of(waited.stderr) == [
        NO_ORDER_WORKER,
        f"Error: timed out after 2 s waiting for run {run_id} to end; its last event was "
        f"flow.started; it goes on: `flowqueue tail {run_id}` follows it again",
    ]
    assert took >= 2, took
    # The run is there and still running: the timeout gave up waiting, nothing more.
    assert idle.fq.store.list_runs("order", limit=1)[0].status == "running"


def test_tail_and_plain_start_with_no_worker_warn_in_one_line(idle: Cluster) -> None:
    started = idle.flowqueue("start", "order", "--input", ORDER)
    assert started.returncode == 0, started.stderr
    assert lines_of(started.stderr) == [NO_ORDER_WORKER]
    run_id = started.stdout.strip()
    tailed = idle.flowqueue("tail", run_id, "--timeout", "1.5", "--json")
    assert tailed.returncode == 124
    assert lines_of(tailed.stderr)[0] == NO_ORDER_WORKER
    assert f"waiting for run {run_id} to end" in lines_of(tailed.stderr)[1]
    assert len(lines_of(tailed.stderr)) == 2
    assert json.loads(tailed.stdout.splitlines()[0])["kind"] == "flow.started"


def test_with_a_live_worker_there_is_no_warning(cluster: Any) -> None:
    done = cluster.flowqueue("start", "example-flow", "--wait", "--timeout", "60")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "flow.completed" in done.stdout.splitlines()[-1]
    napping = cluster.flowqueue("start", "nap", "--input", '{"seconds": 1}').stdout.strip()
    tailed = cluster.flowqueue("tail", napping, "--timeout", "60")
    assert (tailed.returncode, tailed.stderr) == (0, "")


def test_the_http_start_route_warns_in_its_body(idle: Cluster, api: Any, tmp_path: Path) -> None:
    with api.client() as client:  # the session's cluster: a live worker
        served = client.post("/api/_flows/example-flow/start", json={})
        assert served.status_code == 201, served.text
        assert served.json()["warnings"] == []
        schema = client.get("/openapi.json").json()
    documented = schema["components"]["schemas"]["Started"]["properties"]["warnings"]
    assert documented["type"] == "array"
    assert "no live worker" in documented["description"]
    idle_api = ApiProcess(idle.env, tmp_path / "idle-api.log")
    try:
        with idle_api.client() as client:
            unserved_start = client.post("/api/_flows/order/start", json=json.loads(ORDER))
        assert unserved_start.status_code == 201, unserved_start.text
        body = unserved_start.json()
        assert body["warnings"] == [NO_ORDER_WORKER.removeprefix("warning: ")]
        assert idle.fq.store.read(body["run_id"], limit=1)[0].kind == "flow.started"
    finally:
        idle_api.stop()


def worker(status: str, queues: list[str], flows: dict[str, list[str]]) -> WorkerInfo:
    seen = datetime.now(UTC) - timedelta(seconds=1)
    return WorkerInfo(hostname="w@h", queues=queues, flows=flows, last_seen=seen, status=status)


def test_a_worker_serves_a_step_only_online_with_the_step_and_its_queue() -> None:
    steps = {"validate": "celery", "ship": "slow"}
    both = {"order": ["validate", "ship"]}
    assert unserved([worker("online", ["celery", "slow"], both)], "order", steps, "celery") is None
    for lost in ("lost", "offline"):
        warning = unserved([worker(lost, ["celery", "slow"], both)], "order", steps, "celery")
        assert warning is not None
        assert "step 'validate' of flow 'order' (nor 1 more" in warning
    only_default = unserved([worker("online", ["celery"], both)], "order", steps, "celery")
    assert only_default == (
        "no live worker serves step 'ship' of flow 'order' on queue 'slow'; start one "
        "with: celery -A flowqueue worker -Q slow"
    )
    other_flow = [worker("online", ["celery", "slow"], {"refund": ["validate", "ship"]})]
    assert unserved(other_flow, "order", steps, "celery") is not None


# -- Redis down, a bad URL -------------------------------------------------------------

DOWN = "redis://127.0.0.1:1/0"  # nothing listens on port 1
SIGNUP = {"user_id": "u-1", "email": "ada@example.com"}  # fits workers/signups.py
COMMANDS = [
    ("runs",),
    ("runs", "order"),
    ("show", UNKNOWN),
    ("events", UNKNOWN),
    ("tail", UNKNOWN, "--timeout", "5"),
    ("cancel", UNKNOWN),
    ("signal", "probe.x"),
    ("resume", "some-trigger"),
    ("start", "example-flow", "--wait", "--timeout", "5"),
]
URLS = {
    DOWN: f"cannot reach Redis at {DOWN}",
    "redis://:hunter2@127.0.0.1:1/0": "cannot reach Redis at redis://:***@127.0.0.1:1/0",
    "notaurl": "FLOWQUEUE_REDIS_URL 'notaurl' is not a Redis URL",
    "redis://:99999999": "FLOWQUEUE_REDIS_URL 'redis://:99999999' is not a Redis URL",
}


def plain_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWQUEUE_", "CELERY_"))}
    return env | {"FLOWQUEUE_WORKERS": "workers,tests.flows"} | extra


def run_cli(argv: tuple[str, ...], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWQUEUE, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )


def test_redis_down_or_a_bad_url_is_one_line_naming_it_on_every_command() -> None:
    cases = [(url, argv) for url in URLS for argv in COMMANDS]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(
            pool.map(lambda c: run_cli(c[1], plain_env(FLOWQUEUE_REDIS_URL=c[0])), cases)
        )
    for (url, argv), result in zip(cases, results, strict=True):
        shown = f"{url} {argv}: exit {result.returncode}\n{result.stderr}"
        assert result.returncode == 1, shown
        assert len(lines_of(result.stderr)) == 1, shown
        assert lines_of(result.stderr)[0].startswith("Error: "), shown
        assert URLS[url] in result.stderr, shown
        assert "hunter2" not in result.stdout + result.stderr, shown


def test_the_api_refuses_a_bad_url_and_warns_when_redis_is_down() -> None:
    bad = run_cli(("api", "--port", "0"), plain_env(FLOWQUEUE_REDIS_URL="notaurl"))
    assert bad.returncode == 1
    assert lines_of(bad.stderr) == [
        "Error: FLOWQUEUE_REDIS_URL 'notaurl' is not a Redis URL (it has no scheme): use "
        "redis://host:port/db (or rediss://, unix:///path.sock, memory://)."
    ]
    port = free_port()
    server = subprocess.Popen(
        [FLOWQUEUE, "api", "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        env=plain_env(FLOWQUEUE_REDIS_URL=DOWN),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        first = server.stderr.readline()
        assert first.startswith(f"warning: cannot reach Redis at {DOWN}: "), first
        assert first.rstrip().endswith("serving anyway, /healthz answers 503 until Redis answers")
        deadline = time.monotonic() + 30
        while True:  # it serves, and says Redis is down
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "flowqueue api did not start"
                time.sleep(0.1)
        assert health.status_code == 503
        # Every route that needs Redis says so: 503 problem+json, one log line, no traceback.
        base = f"http://127.0.0.1:{port}"
        calls = [
            ("GET", "/api/_flows", None),
            ("GET", "/api/_triggers", None),
            ("GET", "/api/_workers", None),
            ("POST", "/api/_signals", {"name": "user.signed_up", "payload": SIGNUP}),
            ("POST", "/api/_schedules/daily-report/pause", None),
            ("POST", "/api/_flows/example-flow/start", {"name": "x"}),
        ]
        for method, path, body in calls:
            answer = httpx.request(method, base + path, json=body, timeout=30)
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["content-type"] == "application/problem+json", path
            assert answer.json()["detail"].startswith(f"Redis at {DOWN} is not answering"), path
            assert answer.headers["retry-after"] == "5"
    finally:
        server.terminate()
        _, err = server.communicate(timeout=30)
    assert "Traceback" not in err, err


# -- unknown runs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run_id", "expected"),
    [
        (UNKNOWN, f"Error: no run '{UNKNOWN}'; `flowqueue runs` lists recent runs."),
        (
            "a{b}c",
            "Error: run id 'a{b}c' is not valid: use 1-128 characters from letters, digits "
            "and '_.:-'.",
        ),
    ],
    ids=["unknown", "malformed"],
)
def test_an_unknown_run_gets_the_same_answer_from_every_command(
    idle: Cluster, run_id: str, expected: str
) -> None:
    commands = [
        ("show", run_id),
        ("show", run_id, "--json"),
        ("events", run_id),
        ("events", run_id, "--after", "1-0"),
        ("tail", run_id),
        ("tail", run_id, "--timeout", "5"),
        ("cancel", run_id, "--reason", "test"),
        ("runs", "--before", run_id),
        ("runs", "order", "--before", run_id),
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(lambda argv: idle.flowqueue(*argv), commands))
    for argv, answer in zip(commands, answers, strict=True):
        got = (answer.returncode, answer.stdout, answer.stderr.strip())
        assert got == (1, "", expected), argv


# -- runs across flows -----------------------------------------------------------------


def test_runs_without_a_flow_lists_recent_runs_of_every_flow(idle: Cluster) -> None:
    started = [
        idle.flowqueue("start", flow, "--input", value).stdout.strip()
        for flow, value in [("example-flow", "{}"), ("order", ORDER), ("nap", '{"seconds": 0}')]
    ]
    newest = idle.flowqueue("runs", "--limit", "3")
    assert newest.returncode == 0, newest.stderr
    rows = [line.split() for line in newest.stdout.splitlines()]
    assert [(row[0], row[1], row[2]) for row in rows] == [
        (started[2], "nap", "running"),
        (started[1], "order", "running"),
        (started[0], "example-flow", "running"),
    ]
    older = idle.flowqueue("runs", "--limit", "1", "--before", started[1], "--json")
    assert [json.loads(line)["run_id"] for line in older.stdout.splitlines()] == [started[0]]
    one_flow = idle.flowqueue("runs", "nap").stdout.splitlines()
    assert one_flow[0].split()[:2] == [started[2], "nap"]
