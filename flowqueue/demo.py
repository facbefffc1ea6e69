"""``make demo``: the example flows on a real Celery worker, each run's timeline live.

Uses ``FLOWQUEUE_REDIS_URL`` when it is set and reachable; otherwise starts an embedded
redis-server. Starts ``celery -A flowqueue worker`` in a subprocess, runs the flows in
``workers/``, prints every event as it lands, then stops everything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis

from flowqueue.celery_app import create_app
from flowqueue.client import get_run, start_flow
from flowqueue.embedded import EmbeddedRedis
from flowqueue.events import TERMINAL_KINDS
from flowqueue.extension import flowqueue_of
from flowqueue.ids import stream_id_ms
from flowqueue.settings import Settings
from flowqueue.timeline import format_line

# (flow, input, the status the run should end with)
RUNS: list[tuple[str, Any, str]] = [
    ("example-flow", {"name": "Ada"}, "completed"),
    (
        "order",
        {
            "order_id": "o-1001",
            "items": [{"sku": "apple", "quantity": 3}, {"sku": "pear", "quantity": 1}],
            "card": "4242424242424242",
        },
        "completed",
    ),
    ("refund", {"amount": 25}, "failed"),
]


@contextlib.contextmanager
def redis_for_demo() -> Iterator[str]:
    """The configured Redis if ``FLOWQUEUE_REDIS_URL`` is set, else an embedded one."""
    if os.environ.get("FLOWQUEUE_REDIS_URL"):
        url = Settings().redis_url
        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
            print(f"using Redis at {url}")
            yield url
            return
        except redis.RedisError as exc:
            print(f"FLOWQUEUE_REDIS_URL={url} is not reachable ({exc}); using an embedded one")
    with EmbeddedRedis() as server:
        print(f"started embedded redis-server ({server.binary}) at {server.url}")
        yield server.url


@contextlib.contextmanager
def celery_worker(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A flowqueue worker`` until the block ends (warm shutdown, then kill)."""
    command = [sys.executable, "-m", "celery", "-A", "flowqueue", "worker", "-l", "INFO"]
    command += ["-c", "2", "-n", "demo@%h", "--without-mingle", "--without-gossip"]
    with log_path.open("wb") as log:
        worker = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_ready(worker, log_path)
            yield worker
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()


def wait_ready(worker: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while " ready." not in log_path.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the Celery worker did not start; its log:\n{log_path.read_text()}")
        time.sleep(0.1)


def follow(app: Any, run_id: str) -> None:
    origin: int | None = None
    for event in flowqueue_of(app).store.subscribe(run_id):
        origin = stream_id_ms(event.id) if origin is None else origin
        print("  " + format_line(event, origin), flush=True)
        if event.kind in TERMINAL_KINDS:
            return


def main() -> int:
    with redis_for_demo() as url, tempfile.TemporaryDirectory(prefix="flowqueue-demo-") as tmp:
        env = {**os.environ, "FLOWQUEUE_REDIS_URL": url}
        env.pop("CELERY_BROKER_URL", None)
        app = create_app(Settings(redis_url=url))
        log_path = Path(tmp) / "worker.log"
        with celery_worker(env, log_path):
            print(f"started a Celery worker (celery -A flowqueue worker), log: {log_path}")
            ok = True
            for flow, payload, expected in RUNS:
                run_id = start_flow(flow, payload, app=app)
                print(f"\nrun {run_id} of {flow!r}, live:")
                follow(app, run_id)
                state = get_run(run_id, app=app)
                steps = ", ".join(f"{s.name}={s.status.value}" for s in state.steps.values())
                print(f"  => {state.status.value} in {state.duration_ms} ms ({steps})")
                if state.status.value != expected:
                    print(f"  !! expected {expected}")
                    ok = False
        flowqueue_of(app).store.close()
        print("\nworker stopped; the refund run fails on purpose (its bank always declines)")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
