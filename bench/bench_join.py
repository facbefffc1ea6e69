"""A 5-branch fan-out/join for bench/chord.py, as a flow and as a Celery chord.

Workers load it with FLOWQUEUE_WORKERS=bench_join. Every branch and join body is
bench_flows.body (the counter INCR); each join also adds 1 to its run's field of JOINS,
so the benchmark can check the join ran exactly once per run on both sides.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from bench_flows import body
from celery import shared_task

from flowqueue import FlowContext, step

BRANCHES = 5
FLOW = "bench-join"
JOINS = "bench:joins"  # hash: run id (flow) or chord key -> times its join body ran
_clients: dict[int, redis.Redis] = {}  # per process: the prefork pool forks


def count_join(key: str) -> None:
    body()
    client = _clients.get(os.getpid())
    if client is None:
        client = _clients[os.getpid()] = redis.Redis.from_url(os.environ["FLOWQUEUE_REDIS_URL"])
    client.hincrby(JOINS, key, 1)


def _branch(position: int) -> Any:
    def branch(ctx: FlowContext, input: Any) -> None:
        body()
        ctx.emit(f"b{position}.done")

    # Every branch is an entry step, as every task of a chord's group is sent at once.
    return step(
        flow=FLOW,
        entry=True,
        emits=[f"b{position}.done"],
        name=f"b{position}",
        task_name=f"bench.join_b{position}",
    )(branch)


branches = [_branch(position) for position in range(BRANCHES)]


@step(flow=FLOW, subscribes=[f"b{p}.done" for p in range(BRANCHES)], task_name="bench.join")
def join(ctx: FlowContext, inputs: dict[str, Any]) -> None:
    count_join(ctx.run_id)


# Celery's docs: tasks in a chord's header must not ignore their results (the project's
# celeryconfig ignores them by default).
@shared_task(name="bench.chord_branch", ignore_result=False)  # type: ignore[untyped-decorator]
def chord_branch() -> None:
    body()


@shared_task(name="bench.chord_join")  # type: ignore[untyped-decorator]
def chord_join(results: list[Any], key: str) -> None:
    count_join(key)
