"""``make demo``: the example flows on a real Celery worker, each run's timeline live.

Uses ``FLOWQUEUE_REDIS_URL`` when it is set and reachable; otherwise starts an embedded
redis-server. Starts ``celery -A flowqueue worker`` in a subprocess, runs the flows in
``workers/``, prints every event as it lands, then stops everything.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
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
from flowqueue.worker_process import WorkerProcess

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
        args = ["-c", "2", "-n", "demo@%h", "--without-mingle", "--without-gossip"]
        with WorkerProcess(env, log_path, args):
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
