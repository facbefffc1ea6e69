"""Flower tells the truth about steps: a real ``celery -A flowqueue flower`` process,
read through its HTTP API, watching the session's real worker.

A step's task in Flower is ``<run>:<step>``, named ``<flow>/<step>``; a retried step reads
RETRY between attempts and its retries in the end; a parked step reads AWAITING, a resumed
one RESUMED, and a duplicate delivery never turns either into SUCCESS.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowqueue import get_run, resume, start_flow
from flowqueue.backend.redis.embedded import free_port
from flowqueue.model.reducer import StepStatus
from flowqueue.runtime._monitor import name_sent_events
from flowqueue.runtime.app import create_app
from tests.worker_harness import ROOT, Cluster

pytestmark = pytest.mark.e2e

Info = dict[str, Any]


class FlowerProcess:
    """``celery -A flowqueue flower`` on a free port, in a cluster's environment, with
    basic auth (Flower serves its API to authenticated users only)."""

    AUTH = ("flowqueue", "test-only")

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._log = log_path.open("wb")
        celery = str(Path(sys.executable).with_name("celery"))
        command = [celery, "-A", "flowqueue", "flower", f"--port={self.port}"]
        command += ["--address=127.0.0.1", f"--basic-auth={':'.join(self.AUTH)}"]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}", auth=self.AUTH, timeout=10
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, prefix: str, timeout: float = 30.0) -> FlowerProcess:
        """Until Flower has received an event from a worker named ``w<n>-<prefix>@...``
        (its heartbeat): it is capturing events."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"flower exited:\n{self.log()}")
            try:
                metrics = self.http.get("/metrics").text
            except httpx.TransportError:
                metrics = ""
            if f"-{prefix}@" in metrics:
                return self
            time.sleep(0.2)
        raise TimeoutError(f"flower saw no event from a worker:\n{self.log()}")

    def task(self, task_id: str) -> Info | None:
        reply = self.http.get(f"/api/task/info/{task_id}")
        if reply.status_code == 404:
            return None
        reply.raise_for_status()
        info: Info = reply.json()
        return info

    def wait_task(self, task_id: str, ok: Callable[[Info], bool], what: str) -> Info:
        seen: list[Info | None] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            info = self.task(task_id)
            if info is not None and ok(info):
                return info
            if not seen or info != seen[-1]:
                seen.append(info)
            time.sleep(0.05)
        states = [None if i is None else i["state"] for i in seen]
        raise TimeoutError(f"{task_id}: never {what}; Flower read {states}, last {seen[-1]}")

    def wait_state(self, task_id: str, state: str) -> Info:
        return self.wait_task(task_id, lambda info: info["state"] == state, state)

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def flower(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowerProcess]:
    process = FlowerProcess(cluster.env, tmp_path_factory.mktemp("flower") / "flower.log")
    try:
        yield process.wait_ready(cluster.prefix)
    finally:
        process.stop()


def test_a_step_that_fails_twice_then_passes_reads_2_retries_and_success(cluster, flower):
    run = start_flow("partner-sync", {"account": "acme"}, app=cluster.app)
    cluster.wait_terminal(run)
    info = flower.wait_state(f"{run}:call_partner", "SUCCESS")
    assert info["retries"] == 2
    assert info["name"] == "partner-sync/call_partner"  # flow and step, not the task name
    assert info["sent"] is not None  # its task-sent, published by the script that queued it
    assert info["retried"] is not None
    assert "503 from partner (attempt 2)" in info["exception"]  # the last retry's reason
    assert "{'synced': 'acme', 'attempts': 3}" in info["result"]
    # One task per step of the run, found by its flow/step name.
    listed = flower.http.get("/api/tasks", params={"taskname": "partner-sync/call_partner"})
    assert f"{run}:call_partner" in listed.json()


def test_a_step_waiting_for_its_retry_reads_RETRY_then_starts_again(cluster, flower):
    run = start_flow("late-retry", {}, app=cluster.app)  # its retry is 3 s away
    task_id = f"{run}:late_retry"
    waiting = flower.wait_task(task_id, lambda info: info["retried"] is not None, "retried")
    # Flower reads RETRY now, unless the worker's main process published this attempt's
    # task-received after its pool child published task-retried (two connections; seen on
    # a loaded machine): Celery's state machine lets any event replace RETRY, so it then
    # reads RECEIVED until the next attempt. Either way it is still the first attempt.
    assert waiting["state"] in ("RETRY", "RECEIVED")
    assert waiting["started"] < waiting["retried"]
    # 0 until the retry timer fires; then the next attempt's task-sent (retries 1) merges in.
    assert waiting["retries"] in (0, 1)
    assert "first attempt fails; the retry is 3 s away" in waiting["exception"]
    assert "Boom" in waiting["traceback"]
    done = flower.wait_state(task_id, "SUCCESS")
    assert done["retries"] == 1
    assert done["started"] > waiting["retried"]  # the second attempt started after


def test_a_parked_step_reads_AWAITING_then_RESUMED_then_SUCCESS(cluster, flower):
    run = start_flow("flower-await", {"hold": 3}, app=cluster.app)
    task_id = f"{run}:flower_await"
    parked = flower.wait_state(task_id, "AWAITING")
    assert parked["name"] == "flower-await/flower_await"
    assert parked["retries"] == 1  # it parked on its second attempt
    assert parked["result"] == "awaiting a trigger"

    # A duplicate delivery of the parked step ends without running it, and says nothing
    # that would hide the await (a task-succeeded used to turn it into SUCCESS).
    step = cluster.fq.flows.flow("flower-await").step("flower_await")
    cluster.fq.orchestrator.send(
        cluster.fq.orchestrator.message(run, "flower-await", step, {"hold": 3})
    )
    flower.wait_task(task_id, lambda info: info["started"] > parked["started"], "re-started")
    time.sleep(1.5)  # a task-succeeded would have followed the task-started at once
    still = flower.task(task_id)
    assert still is not None
    assert still["state"] == "AWAITING"

    info = get_run(run, app=cluster.app).steps["flower_await"]
    assert info.status == StepStatus.AWAITING
    assert info.awaiting is not None
    assert info.awaiting.trigger_id is not None
    resume(info.awaiting.trigger_id, {"approved": True}, app=cluster.app)
    running = flower.wait_state(task_id, "RESUMED")  # it holds 3 s once resumed
    assert running["retries"] == 1
    assert running["result"] is None
    done = flower.wait_state(task_id, "SUCCESS")
    assert done["retries"] == 1
    assert "'approved': True" in done["result"]
    assert cluster.wait_terminal(run)[-1].kind == "flow.completed"


def test_a_sleeping_step_reads_AWAITING_with_its_wake_time(cluster, flower):
    run = start_flow("nap", {"seconds": 4}, app=cluster.app)
    task_id = f"{run}:nap"
    parked = flower.wait_state(task_id, "AWAITING")
    slept = next(e for e in cluster.fq.store.read(run) if e.kind == "step.await.time")
    assert parked["result"] == f"awaiting time until {slept.data['until']}"
    assert flower.wait_state(task_id, "SUCCESS")["retries"] == 0


def test_task_sent_events_name_the_step_as_task_received_does(settings):
    """A monitor that gets a message's ``task-sent`` after its ``task-received`` (they
    travel on different connections) keeps the name of the later one: both say
    ``<flow>/<step>``. Messages without a shadow keep the task's name."""
    app = create_app(settings)
    amqp = app.amqp
    shadowed = amqp.create_task_message(
        "r:s", "workers.flaky.call_partner", create_sent_event=True, shadow="partner-sync/s"
    )
    assert shadowed.sent_event["name"] == "partner-sync/s"
    plain = amqp.create_task_message("t-1", "some.task", create_sent_event=True)
    assert plain.sent_event["name"] == "some.task"
    name_sent_events(app)  # installed once: a second call wraps nothing again
    assert amqp.create_task_message("t-2", "x", create_sent_event=True).sent_event["name"] == "x"
