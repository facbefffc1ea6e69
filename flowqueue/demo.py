"""``make demo``: a short simulated run, printed live through ``subscribe``.

Uses ``FLOWQUEUE_REDIS_URL`` when it is set (and reachable); otherwise starts an embedded
redis-server for the duration of the demo. Celery-driven flows replace the simulation in
the next release.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator

import redis

from flowqueue.embedded import EmbeddedRedis
from flowqueue.events import TERMINAL_KINDS, NewEvent
from flowqueue.ids import new_run_id, stream_id_ms
from flowqueue.reducer import reduce
from flowqueue.settings import Settings
from flowqueue.store import RedisEventStore
from flowqueue.timeline import format_line

FLOW = "order"


def simulated_run(run_id: str) -> list[tuple[float, NewEvent]]:
    """(delay before, event) pairs: validate, then reserve + charge in parallel, then ship."""

    def e(kind: str, step: str | None = None, **data: object) -> NewEvent:
        return NewEvent(kind=kind, run_id=run_id, flow=FLOW, step=step, data=data)

    return [
        (0.0, e("flow.started", input={"order_id": "o-1001", "amount": 42})),
        (0.05, e("step.started", "validate", attempt=1, worker="demo@local")),
        (0.02, e("log", "validate", level="info", msg="order looks valid",
                 fields={"order_id": "o-1001"})),
        (0.02, e("state.set", "validate", key="amount", value=42)),
        (0.02, e("emit", "validate", name="order.validated", payload={"order_id": "o-1001"})),
        (0.01, e("step.completed", "validate", result={"ok": True})),
        (0.05, e("step.started", "reserve_stock", attempt=1, worker="demo@local")),
        (0.00, e("step.started", "charge_card", attempt=1, worker="demo@local")),
        (0.08, e("step.failed", "charge_card", attempt=1, will_retry=True,
                 error={"type": "GatewayTimeout", "message": "card gateway timed out"})),
        (0.01, e("step.retry", "charge_card", attempt=2, delay_s=0.1)),
        (0.04, e("emit", "reserve_stock", name="stock.reserved", payload={"sku": "A-1"})),
        (0.01, e("step.completed", "reserve_stock", result={"reserved": 1})),
        (0.10, e("step.started", "charge_card", attempt=2, worker="demo@local")),
        (0.05, e("emit", "charge_card", name="card.charged", payload={"amount": 42})),
        (0.01, e("step.completed", "charge_card", result={"charged": 42})),
        (0.05, e("step.started", "ship", attempt=1, worker="demo@local")),
        (0.05, e("state.set", "ship", key="tracking", value="TRK-77")),
        (0.01, e("step.completed", "ship", result={"tracking": "TRK-77"})),
        (0.01, e("flow.completed", result={"tracking": "TRK-77"})),
    ]  # fmt: skip


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


def main() -> int:
    with redis_for_demo() as url:
        store = RedisEventStore(Settings(redis_url=url))
        run_id = new_run_id()
        plan = simulated_run(run_id)

        def write() -> None:
            for delay, event in plan:
                time.sleep(delay)
                store.append(event)

        print(f"\nrun {run_id} of flow {FLOW!r}, live:\n")
        writer = threading.Thread(target=write, name="demo-writer")
        origin: int | None = None
        stream = store.subscribe(run_id)
        writer.start()
        for event in stream:
            origin = origin if origin is not None else stream_id_ms(event.id)
            print(format_line(event, origin), flush=True)
            if event.kind in TERMINAL_KINDS:
                break
        writer.join()

        state = reduce(store.read(run_id))
        print(f"\nstatus={state.status.value} duration={state.duration_ms} ms "
              f"events={state.event_count} state={state.state}")  # fmt: skip
        for step in state.steps.values():
            print(f"  {step.name:<14} {step.status.value:<10} attempts={step.attempts}")
        store.close()
        return 0 if state.status.value == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
