"""``flowqueue api --workers 2`` (the console script, as a user runs it): two processes
share the port, each serves SSE streams with its own Redis Pub/Sub connection.

Which process accepts a connection is the kernel's choice, so the test makes it: while
one process is stopped (SIGSTOP), the other accepts every new connection.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis

from flowqueue.backend.redis.embedded import free_port
from flowqueue.backend.redis.store import client_name
from flowqueue.model.events import NewEvent
from tests.api_harness import ApiProcess
from tests.test_api import sse_events
from tests.worker_harness import ROOT, Cluster

pytestmark = pytest.mark.e2e
RUN_ID = "0190a4e2-5200-7000-8000-000000000000"


class WorkersApi(ApiProcess):
    """``flowqueue api --workers N`` on a free port."""

    def __init__(self, env: dict[str, str], log_path: Path, workers: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        command = [str(Path(sys.executable).parent / "flowqueue"), "api", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, "--workers", str(workers), "--log-level", "warning"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def serving(self, count: int, timeout: float = 30.0) -> list[psutil.Process]:
        """The worker processes (uvicorn spawns them), once there are ``count``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            children = psutil.Process(self.process.pid).children()
            spawned = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
            if len(spawned) == count:
                return spawned
            time.sleep(0.1)
        raise TimeoutError(f"not {count} worker processes:\n{self.log_path.read_text()}")


@pytest.fixture
def deployment(redis_server: Any, tmp_path: Path) -> Iterator[tuple[Cluster, WorkersApi]]:
    cluster = Cluster(redis_server.url, tmp_path)
    api = WorkersApi(cluster.env, tmp_path / "api.log", workers=2)
    workers = api.serving(2)
    yield cluster, api
    for worker in workers:  # never leave one stopped
        if worker.is_running():
            worker.send_signal(signal.SIGCONT)
    api.stop()
    psutil.wait_procs(workers, timeout=15)
    cluster.close()


def sse_clients(api: WorkersApi) -> int:
    """This process's SSE clients, as /metrics says on a new connection."""
    text = httpx.get(f"{api.url}/metrics", timeout=10).text
    return int(
        next(
            line for line in text.splitlines() if line.startswith("flowqueue_sse_clients ")
        ).split()[-1]
    )


def follow_on(
    api: WorkersApi, process: psutil.Process, stopped: psutil.Process, got: list[Any]
) -> threading.Thread:
    """Open a stream while ``stopped`` is stopped, so ``process`` accepts it; return once
    ``process`` reports it."""
    path = f"/api/_flows/nap/runs/{RUN_ID}/stream"
    stopped.send_signal(signal.SIGSTOP)
    try:
        reader = threading.Thread(target=lambda: got.extend(sse_events(api, path)))
        reader.start()
        deadline = time.monotonic() + 30
        while sse_clients(api) != 1:  # the one running process answers, with its client
            assert time.monotonic() < deadline, "the stream was not served"
            time.sleep(0.05)
    finally:
        stopped.send_signal(signal.SIGCONT)
    return reader


def test_two_processes_serve_streams_each_with_its_own_pubsub(deployment):
    cluster, api = deployment
    first, second = api.serving(2)
    store = cluster.fq.store
    base = {"run_id": RUN_ID, "flow": "nap"}
    store.append(NewEvent(kind="flow.started", data={"input": {}}, **base))
    on_first: list[Any] = []
    on_second: list[Any] = []
    readers = [
        follow_on(api, first, second, on_first),
        follow_on(api, second, first, on_second),
    ]
    # One Pub/Sub connection per process, each subscribed to the run's channel.
    client = redis.Redis.from_url(cluster.url)
    name = client_name(cluster.settings)
    subscribed = [c for c in client.client_list() if c["name"] == name and int(c["sub"]) > 0]
    client.close()
    assert len(subscribed) == 2
    for i in range(50):
        store.append(NewEvent(kind="log", step="nap", data={"msg": f"{i}"}, **base))
    store.append(NewEvent(kind="flow.completed", **base))
    for reader in readers:
        reader.join(60)
    log = [event.id for event in store.read(RUN_ID)]
    assert len(log) == 52
    assert [sse.id for sse in on_first] == log
    assert [sse.id for sse in on_second] == log
