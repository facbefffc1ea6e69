"""``make demo``: the example flows on a real Celery worker, each run's timeline live.

Uses ``FLOWQUEUE_REDIS_URL`` when it is set and reachable; otherwise starts an embedded
redis-server. Starts ``celery -A flowqueue worker`` in a subprocess, runs the flows in
``workers/`` (joins, retries, a durable sleep, an event wait and a trigger that the demo
answers as the outside world would), prints every event as it lands, then stops
everything.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import redis

from flowqueue.backend.redis.embedded import EmbeddedRedis
from flowqueue.devtools.worker import WorkerProcess
from flowqueue.model.events import Event, EventKind
from flowqueue.model.lines import timeline
from flowqueue.runtime.app import create_app
from flowqueue.runtime.client import get_run, resume, signal, start_flow
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.settings import Settings

Nudge = Callable[[Event, Any], None]  # acts on a live event, as the outside world would


def pay(event: Event, app: Any) -> None:
    """The payment provider confirms the payment the order waits for."""
    if event.kind == EventKind.STEP_AWAIT_EVENT:
        payment = {"order_id": event.data["match"]["order_id"], "payment_id": "pay-42"}
        print(f"  -> flowqueue.signal('payment.confirmed', {payment})", flush=True)
        signal("payment.confirmed", payment, app=app)


def approve(event: Event, app: Any) -> None:
    """A manager clicks the approve link that carries the trigger id."""
    if event.kind == EventKind.STEP_AWAIT_TRIGGER:
        trigger = event.data["trigger_id"]
        print(f"  -> flowqueue.resume({trigger[:12]}..., {{'approved': True}})", flush=True)
        resume(trigger, {"approved": True, "by": "manager"}, app=app)


# (flow, input, the status the run should end with, what the outside world does)
RUNS: list[tuple[str, Any, str, Nudge | None]] = [
    ("example-flow", {"name": "Ada"}, "completed", None),
    (
        "order",
        {
            "order_id": "o-1001",
            "items": [{"sku": "apple", "quantity": 3}, {"sku": "pear", "quantity": 1}],
            "card": "4242424242424242",
        },
        "completed",
        None,
    ),
    ("partner-sync", {"account": "acme"}, "completed", None),
    ("reminder", {"user": "ada", "message": "renew", "delay_seconds": 1.5}, "completed", None),
    ("order-approval", {"order_id": "o-2002", "amount": 49.5}, "completed", pay),
    ("expense-approval", {"employee": "bob", "amount": 120.0}, "completed", approve),
    ("refund", {"amount": 25}, "failed", None),
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


def follow(app: Any, run_id: str, nudge: Nudge | None) -> None:
    for event, line in timeline(flowqueue_of(app).store.subscribe(run_id)):
        print("  " + line, flush=True)
        if nudge is not None:
            nudge(event, app)


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
            for flow, payload, expected, nudge in RUNS:
                run_id = start_flow(flow, payload, app=app)
                print(f"\nrun {run_id} of {flow!r}, live:")
                follow(app, run_id, nudge)
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
