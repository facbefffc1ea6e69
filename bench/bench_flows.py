"""Tasks and flows for bench/steps.py (workers load them with FLOWQUEUE_WORKERS=bench_flows).

Every task and step runs the same body: INCR a counter, so the benchmark can tell when
all the work has run and both sides do identical work.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import Any

import redis
from celery import shared_task

from flowqueue import FlowContext, step

COUNTER = "bench:done"
CHAIN_LENGTH = 10
_clients: dict[int, redis.Redis] = {}  # per process: the prefork pool forks


def body() -> None:
    client = _clients.get(os.getpid())
    if client is None:
        client = _clients[os.getpid()] = redis.Redis.from_url(os.environ["FLOWQUEUE_REDIS_URL"])
    client.incr(COUNTER)


@shared_task(name="bench.noop")
def noop() -> None:
    body()


@shared_task(name="bench.noop_recorded", bind=True)
def noop_recorded(self: Any) -> None:
    """A task that records its end as Celery's Redis result backend does (``SET`` of its
    meta with an expiry, and a ``PUBLISH``, in one round trip): the least a recorded
    task costs in Celery, with ``task_ignore_result`` off and a Redis backend."""
    body()
    meta = json.dumps({"status": "SUCCESS", "result": None, "task_id": self.request.id})
    key = f"celery-task-meta-{self.request.id}"
    pipe = _clients[os.getpid()].pipeline(transaction=False)
    pipe.set(key, meta, ex=86400).publish(key, meta).execute()


@step(flow="bench-one", entry=True, task_name="bench.one_step")
def one_step(ctx: FlowContext, input: Any) -> None:
    body()


def _link(position: int) -> Any:
    def link(ctx: FlowContext, input: Any) -> None:
        body()
        if position < CHAIN_LENGTH - 1:
            ctx.emit(f"s{position}.done")

    first, last = position == 0, position == CHAIN_LENGTH - 1
    return step(
        flow="bench-chain",
        entry=first,
        subscribes=() if first else [f"s{position - 1}.done"],
        emits=() if last else [f"s{position}.done"],
        name=f"s{position}",
        task_name=f"bench.chain_s{position}",
    )(link)


links = [_link(position) for position in range(CHAIN_LENGTH)]


@step(flow="bench-hop", entry=True, emits=["hop"], task_name="bench.hop_a")
def hop_a(ctx: FlowContext, input: Any) -> None:
    ctx.emit("hop", {"t": time.time()})


@step(flow="bench-hop", subscribes=["hop"], task_name="bench.hop_b")
def hop_b(ctx: FlowContext, inputs: dict[str, Any]) -> float:
    return (time.time() - inputs["hop"]["t"]) * 1000  # emit -> this step's body, in ms


HOPS_CELERY = "bench:hops:celery"


@shared_task(name="bench.hop_celery_a")
def hop_celery_a() -> float:
    return time.time()  # the chain sends the next task with this as its argument


@shared_task(name="bench.hop_celery_b")
def hop_celery_b(sent: float) -> None:
    """The Celery shape of bench-hop: the previous task's end -> this body, in ms."""
    client = _clients.get(os.getpid())
    if client is None:
        client = _clients[os.getpid()] = redis.Redis.from_url(os.environ["FLOWQUEUE_REDIS_URL"])
    client.rpush(HOPS_CELERY, (time.time() - sent) * 1000)


# -- bench/timers.py: how late a sleep resumes vs a Celery countdown ---------------------

LATE_FLOWQUEUE = "bench:late:flowqueue"
LATE_CELERY = "bench:late:celery"


def push_late(key: str, due_epoch: float) -> None:
    """RPUSH how many ms after ``due_epoch`` this body runs."""
    late_ms = (time.time() - due_epoch) * 1000
    client = _clients.get(os.getpid())
    if client is None:
        client = _clients[os.getpid()] = redis.Redis.from_url(os.environ["FLOWQUEUE_REDIS_URL"])
    client.rpush(key, late_ms)


@shared_task(name="bench.late")
def late(eta_epoch: float) -> None:
    push_late(LATE_CELERY, eta_epoch)


@shared_task(name="bench.late_first")
def late_first(seconds: float) -> None:
    """The Celery shape of a step that sleeps: it runs, then sends its continuation."""
    late.apply_async(args=[time.time() + seconds], countdown=seconds)


@step(flow="bench-sleep", entry=True, task_name="bench.sleep")
def sleep_step(ctx: FlowContext, input: Any) -> None:
    until = ctx.once("until", lambda: time.time() + input["seconds"])
    ctx.sleep_until(datetime.fromtimestamp(until, UTC))
    push_late(LATE_FLOWQUEUE, until)
