"""Where a single-step run's cost goes, against a plain Celery task, in the same run.

    .venv/bin/python bench/profile_steps.py [--n 2000] [--seconds 20] [--json]

One throwaway redis-server and one ``celery -A flowqueue worker -c 2`` (bench/steps.py's
worker, every body the same counter INCR). Two measurements:

  (1) Redis, per task and per run: commands by name, script calls, bytes in and out,
      from the server's own ``INFO commandstats`` / ``INFO stats`` around N plain tasks,
      then around N single-step runs (the broker's traffic included on both sides);
  (2) CPU per unit of work and per process (``psutil`` CPU times around N of each: plain
      tasks, single-step runs, steps of 10-task chains, steps of 10-step flows): the
      starter (this process), Redis, the worker's main process, its pool children;
  (3) the worker's CPU: ``py-spy record`` (sampling, the main process and the pool
      children) while single-step runs flow for ``--seconds``; the samples' leaf frames
      are grouped by where they spend the time (Redis I/O, JSON, pydantic, Celery and
      kombu, flowqueue's own code, ...). Needs ``py-spy`` (pip install py-spy).

This is issue 15's "profile first": bench/README.md keeps the table it prints.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import redis
from common import HERE, ROOT, cli, worker
from steps import Bench

from flowqueue.backend.redis.embedded import EmbeddedRedis

# Leaf frames by the file they run in: first match wins (paths as py-spy prints them).
AREAS = [
    ("redis-py, hiredis (sockets, parsing)", ("redis/", "hiredis")),
    ("kombu (broker transport)", ("kombu/",)),
    ("celery, billiard (worker, pool)", ("celery/", "billiard/", "vine/")),
    ("pydantic (models, validation, JSON)", ("pydantic",)),
    ("json", ("json/",)),
    ("flowqueue", ("flowqueue/",)),
    ("bench body", ("bench_flows",)),
    (
        "socket, select, threading, logging",
        ("socket.py", "selectors.py", "threading.py", "logging/"),
    ),
]


def command_stats(client: redis.Redis) -> tuple[dict[str, int], int, int]:
    stats: dict[str, Any] = client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
    net: dict[str, Any] = client.info("stats")
    return calls, int(net["total_net_input_bytes"]), int(net["total_net_output_bytes"])


def redis_cost(bench: Bench, client: redis.Redis, n: int) -> dict[str, Any]:
    """Commands and bytes per task and per run (the server's counters, before and after)."""
    found: dict[str, Any] = {}
    for side, work in (("task", bench.celery_tasks), ("run", bench.flow_runs)):
        calls0, in0, out0 = command_stats(client)
        work(n)
        time.sleep(1)  # let the last acks and heartbeats land
        calls1, in1, out1 = command_stats(client)
        per = {k: (calls1.get(k, 0) - calls0.get(k, 0)) / n for k in calls1}
        found[side] = {
            "commands": round(sum(per.values()), 1),
            "by_command": {
                k: round(v, 2) for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v >= 0.05
            },
            "bytes_in": round((in1 - in0) / n),
            "bytes_out": round((out1 - out0) / n),
        }
    return found


def cpu_per_process(
    bench: Bench, client: redis.Redis, worker_pid: int, n: int
) -> dict[str, dict[str, float]]:
    """CPU µs per unit of work in each process, from their CPU times before and after."""
    starter = psutil.Process()
    server = psutil.Process(int(client.info("server")["process_id"]))
    main = psutil.Process(worker_pid)

    def times() -> dict[str, float]:
        def cpu(process: psutil.Process) -> float:
            used = process.cpu_times()
            return float(used.user + used.system)

        children = main.children(recursive=True)
        return {
            "starter": cpu(starter),
            "redis": cpu(server),
            "worker_main": cpu(main),
            "pool_children": sum(cpu(child) for child in children),
        }

    chains = max(1, n // 10)
    work = {
        "plain task": lambda: bench.celery_tasks(n),
        "single-step run": lambda: bench.flow_runs(n),
        "step of a 10-task chain": lambda: bench.celery_chains(chains, 10),
        "step of a 10-step flow": lambda: bench.flow_chains(chains, 10),
    }
    found: dict[str, dict[str, float]] = {}
    for name, do in work.items():
        before = times()
        do()
        after = times()
        units = chains * 10 if name.startswith("step of") else n
        per = {k: round((after[k] - before[k]) / units * 1e6, 1) for k in before}
        found[name] = {**per, "total": round(sum(per.values()), 1)}
    return found


def worker_profile(bench: Bench, pid: int, seconds: float, out: Path) -> dict[str, float]:
    """py-spy samples of the worker while single-step runs flow; share per area."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    raw = out / "worker.txt"
    record = subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--subprocesses", "--format", "raw",
         "--duration", str(int(seconds)), "--rate", "200", "--nonblocking", "-o", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        bench.flow_runs(200)
    record.wait(60)
    areas: collections.Counter[str] = collections.Counter()
    idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        if "poll" in leaf or "select" in leaf or "_wait" in leaf or "sleep" in leaf:
            idle += int(count)  # waiting, not working
            continue
        area = next((name for name, marks in AREAS if any(m in leaf for m in marks)), "other")
        areas[area] += int(count)
    busy = sum(areas.values())
    return {name: round(100 * count / busy, 1) for name, count in areas.most_common()} | {
        "busy_samples": busy,
        "idle_samples": idle,
    }


def run(n: int, seconds: float) -> dict[str, Any]:
    sys.path[:0] = [str(HERE), str(ROOT)]
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        os.environ["FLOWQUEUE_REDIS_URL"] = server.url
        os.environ["FLOWQUEUE_WORKERS"] = "bench_flows"
        os.environ.pop("CELERY_BROKER_URL", None)
        with worker(server.url, Path(tmp) / "worker.log") as process:
            bench = Bench(server.url)
            bench.celery_tasks(200)  # warm up both sides
            bench.flow_runs(200)
            client = redis.Redis.from_url(server.url)
            cost = redis_cost(bench, client, n)
            cpu = cpu_per_process(bench, client, process.process.pid, n)
            profile = worker_profile(bench, process.process.pid, seconds, Path(tmp))
    return {"n": n, "redis": cost, "cpu_us_per_unit": cpu, "worker_cpu_percent": profile}


def report(result: dict[str, Any]) -> None:
    for side in ("task", "run"):
        cost = result["redis"][side]
        print(
            f"per {side:4}: {cost['commands']:>5} Redis commands, {cost['bytes_in']:>6} B in, "
            f"{cost['bytes_out']:>6} B out"
        )
        print("          " + ", ".join(f"{k} {v:g}" for k, v in cost["by_command"].items()))
    print("CPU µs per unit:  starter  redis  worker main  pool children  total")
    for name, per in result["cpu_us_per_unit"].items():
        print(
            f"  {name:24} {per['starter']:>6} {per['redis']:>6} {per['worker_main']:>12} "
            f"{per['pool_children']:>14} {per['total']:>6}"
        )
    print("worker CPU while single-step runs flow (share of busy samples):")
    for name, share in result["worker_cpu_percent"].items():
        if not name.endswith("_samples"):
            print(f"  {share:5.1f} %  {name}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    cli(parser, run, report)
