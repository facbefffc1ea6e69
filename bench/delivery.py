"""One delivery's CPU in a pool child: a single-step run's first delivery against a plain
Celery task, both run through Celery's tracer in this process, in the same run.

    .venv/bin/python bench/delivery.py [--n 2000] [--rounds 5] [--json]

The worker's pool child does this for each message: it runs the task through Celery's
tracer (``build_tracer``, as the prefork pool does). Here N messages of each side are
queued on a throwaway redis-server (N ``bench.noop`` tasks; N ``bench-one`` runs, each
started by ``start_flow``), then taken off their lists and run one by one through the
tracer; both bodies are bench/bench_flows.py's counter INCR. Rounds interleave the two;
each figure is the median of the rounds' CPU per delivery (``resource.getrusage``: user
and system time of this process, so no scheduling noise of a busy worker). Prints the
extra CPU of a run's delivery, and the ratio. bench/steps.py measures what reaches a
user (throughput through a real worker); this isolates the part flowqueue adds in the
child (its middleware, its events, its script call), which sits on the path from one
message to the next.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import resource
import statistics
import sys
from typing import Any

import redis
from common import HERE, ROOT, cli
from kombu.transport.redis import Channel

from flowqueue.backend.redis.embedded import EmbeddedRedis


def _cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


class Deliveries:
    """Runs the messages queued on one list through Celery's tracer, as a pool child."""

    def __init__(self, app: Any, client: redis.Redis) -> None:
        from celery.app.trace import build_tracer

        self.app, self.client, self._build = app, client, build_tracer
        self._tracers: dict[str, Any] = {}

    def run(self, queue: str, n: int) -> tuple[float, float]:
        """(user, system) µs of CPU per delivery of the next ``n`` messages of ``queue``."""
        raws = [self.client.rpop(queue) for _ in range(n)]
        if any(raw is None for raw in raws):
            raise RuntimeError(f"fewer than {n} messages on {queue!r}")
        user, system = _cpu()
        for raw in raws:
            self._deliver(raw)
        user_after, system_after = _cpu()
        return (user_after - user) / n * 1e6, (system_after - system) / n * 1e6

    def _deliver(self, raw: Any) -> None:
        message = json.loads(raw)
        headers = message["headers"]
        args, kwargs, embed = json.loads(base64.b64decode(message["body"]))
        name = headers["task"]
        tracer = self._tracers.get(name)
        if tracer is None:
            tracer = self._tracers[name] = self._build(
                name, self.app.tasks[name], app=self.app, eager=False
            )
        info = {"exchange": "", "routing_key": "celery", "priority": 0, "redelivered": False}
        request = {**headers, **embed, "hostname": "bench@delivery", "delivery_info": info}
        tracer(headers["id"], args, kwargs, request)


def _filled(client: redis.Redis) -> str:
    """The list a new run's entry step waits on: kombu keeps one per priority step."""
    for queue in ["celery", *(f"celery{Channel.sep}{p}" for p in (3, 6, 9))]:
        if client.llen(queue):
            return queue
    raise RuntimeError("no queued message: did start_flow send the entry step?")


def run(n: int, rounds: int) -> dict[str, Any]:
    sys.path[:0] = [str(HERE), str(ROOT)]
    with EmbeddedRedis() as server:
        os.environ["FLOWQUEUE_REDIS_URL"] = server.url
        os.environ["FLOWQUEUE_WORKERS"] = "bench_flows"
        os.environ.pop("CELERY_BROKER_URL", None)
        from bench_flows import noop

        import flowqueue

        app = flowqueue.app
        app.flowqueue.import_workers()
        client = redis.Redis.from_url(server.url)
        deliveries = Deliveries(app, client)
        task = app.tasks[noop.name]

        def tasks(count: int) -> tuple[float, float]:
            for _ in range(count):
                task.apply_async()
            return deliveries.run("celery", count)

        def runs(count: int) -> tuple[float, float]:
            for _ in range(count):
                flowqueue.start_flow("bench-one")
            return deliveries.run(_filled(client), count)

        tasks(min(n, 200))  # warm up: connections, scripts, tracers
        runs(min(n, 200))
        per: dict[str, list[tuple[float, float]]] = {"task": [], "run": []}
        for _ in range(rounds):
            per["task"].append(tasks(n))
            per["run"].append(runs(n))
        client.close()
        app.flowqueue.close()

    def median(side: str, part: int | None = None) -> float:
        values = [sum(cpu) if part is None else cpu[part] for cpu in per[side]]
        return statistics.median(values)

    task_us, run_us = median("task"), median("run")
    return {
        "n": n,
        "rounds": rounds,
        "task_us": round(task_us, 1),
        "run_us": round(run_us, 1),
        "task_user_us": round(median("task", 0), 1),
        "task_system_us": round(median("task", 1), 1),
        "run_user_us": round(median("run", 0), 1),
        "run_system_us": round(median("run", 1), 1),
        "extra_us": round(run_us - task_us, 1),
        "ratio": round(task_us / run_us, 3),
        "task_rounds_us": [round(sum(cpu), 1) for cpu in per["task"]],
        "run_rounds_us": [round(sum(cpu), 1) for cpu in per["run"]],
    }


def report(r: dict[str, Any]) -> None:
    print(f"{r['rounds']} rounds of {r['n']} deliveries, through Celery's tracer in one process")
    print(
        f"plain task:            {r['task_us']:>7} µs CPU per delivery "
        f"(user {r['task_user_us']}, system {r['task_system_us']}) {r['task_rounds_us']}"
    )
    print(
        f"single-step run's:     {r['run_us']:>7} µs CPU per delivery "
        f"(user {r['run_user_us']}, system {r['run_system_us']}) {r['run_rounds_us']}"
    )
    print(f"a run's delivery costs {r['extra_us']} µs more; task / run = {r['ratio']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="deliveries per side and round")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds")
    cli(parser, run, report)


if __name__ == "__main__":
    main()
