"""flowqueue durable sleeps against plain Celery countdowns, on the same worker, in the same run.

    .venv/bin/python bench/timers.py [--n 1000] [--seconds 1] [--timers 100000] [--json]

One throwaway redis-server and one ``celery -A flowqueue worker -c 2`` (the project's
celeryconfig) serve both sides (tasks and steps in bench/bench_flows.py). After a small
warm-up of each:
  (1) resume lateness under load: N ``bench.late`` Celery tasks sent with a countdown of
      S seconds, then N concurrent "bench-sleep" runs whose step sleeps until S seconds
      after it first ran; each body records how many ms after its due time it ran.
  (2) worker memory vs pending timers: RSS of the idle worker (main process and pool)
      before and after P timers due in an hour are written to the timers sorted set,
      and the Redis memory they take.
Targets: flowqueue p99 lateness <= 250 ms; worker RSS growth < 5 %. BENCH_CONCURRENCY
sets the worker's pool size (default 2, this machine's core count).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
from common import cli, pct, verdict
from steps import HERE, ROOT, worker

from flowqueue.embedded import EmbeddedRedis
from flowqueue.keys import Keys
from flowqueue.timers import TimerSpec, now_ms

LATE_P99_TARGET_MS = 250.0
RSS_GROWTH_TARGET = 0.05
MIB = 1024 * 1024


def descendants(root: int) -> list[int]:
    """``root`` and every process below it, from the ppid links in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the name may hold spaces or ')'
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_bytes(root: int) -> int:
    """Sum of VmRSS over ``root`` and its descendants."""
    total = 0
    for pid in descendants(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def mean_rss(root: int, samples: int = 5, every: float = 0.2) -> float:
    values = []
    for _ in range(samples):
        values.append(rss_bytes(root))
        time.sleep(every)
    return statistics.fmean(values)


class Bench:
    def __init__(self, url: str) -> None:
        from bench_flows import LATE_CELERY, LATE_FLOWQUEUE, late
        from steps import Bench as StepsBench

        import flowqueue

        self.flowqueue = flowqueue
        self.steps = StepsBench(url)  # its _wait_completed
        self.redis = redis.Redis.from_url(url)
        self.keys = Keys(flowqueue.app.flowqueue.settings.key_prefix)
        self.late = flowqueue.app.tasks[late.name]
        self.lists = {"celery": LATE_CELERY, "flowqueue": LATE_FLOWQUEUE}

    def _collect(self, side: str, n: int, timeout: float = 600) -> list[float]:
        key, deadline = self.lists[side], time.monotonic() + timeout
        while self.redis.llen(key) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{side}: only {self.redis.llen(key)} of {n} bodies ran")
            time.sleep(0.01)
        values = [float(v) for v in self.redis.lrange(key, 0, -1)]
        self.redis.delete(key)
        return values

    def celery(self, n: int, seconds: float) -> list[float]:
        for _ in range(n):
            self.late.apply_async(args=[time.time() + seconds], countdown=seconds)
        return self._collect("celery", n)

    def flows(self, n: int, seconds: float) -> list[float]:
        runs = [self.flowqueue.start_flow("bench-sleep", {"seconds": seconds}) for _ in range(n)]
        late = self._collect("flowqueue", n)
        self.steps._wait_completed(runs)
        return late

    def inject(self, count: int, batch: int = 5_000) -> None:
        """``count`` pending wake timers of fake runs, due an hour from now."""
        due = now_ms() + 3_600_000
        for start in range(0, count, batch):
            pipe = self.redis.pipeline(transaction=False)
            mapping = {
                TimerSpec(
                    kind="wake", run_id=f"fake-{i}", flow="bench-sleep", step="sleep_step",
                    key="sleep_step#2", due_ms=due,
                ).member(): due
                for i in range(start, min(start + batch, count))
            }  # fmt: skip
            pipe.zadd(self.keys.timers, mapping)
            pipe.execute()

    def used_memory(self) -> int:
        return int(self.redis.info("memory")["used_memory"])


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(samples), 1),
        "p99": round(pct(samples, 0.99), 1),
        "max": round(max(samples), 1),
    }


def run(n: int, seconds: float, timers: int) -> dict[str, Any]:
    sys.path[:0] = [str(HERE), str(ROOT)]
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        os.environ["FLOWQUEUE_REDIS_URL"] = server.url
        os.environ["FLOWQUEUE_WORKERS"] = "bench_flows"
        os.environ.pop("CELERY_BROKER_URL", None)
        with worker(server.url, Path(tmp) / "worker.log") as proc:
            bench = Bench(server.url)
            bench.celery(min(n, 50), seconds)  # warm-up: connections, pools, scripts
            bench.flows(min(n, 50), seconds)
            celery = summary(bench.celery(n, seconds))
            flows = summary(bench.flows(n, seconds))
            time.sleep(1)  # let the worker settle
            pid = proc.process.pid
            rss_before, redis_before = mean_rss(pid), bench.used_memory()
            bench.inject(timers)
            redis_after = bench.used_memory()
            time.sleep(5)  # ~50 pump polls over the pending timers
            rss_after = mean_rss(pid)
            pending = int(bench.redis.zcard(bench.keys.timers))
    growth = (rss_after - rss_before) / rss_before
    return {
        "n": n,
        "seconds": seconds,
        "timers": timers,
        "celery_late_ms": celery,
        "flowqueue_late_ms": flows,
        "p99_ratio": round(flows["p99"] / celery["p99"], 2) if celery["p99"] > 0 else None,
        "worker_rss_before_mib": round(rss_before / MIB, 1),
        "worker_rss_after_mib": round(rss_after / MIB, 1),
        "worker_rss_growth_mib": round((rss_after - rss_before) / MIB, 2),
        "worker_rss_growth_pct": round(growth * 100, 2),
        "redis_timers_mib": round((redis_after - redis_before) / MIB, 1),
        "redis_bytes_per_timer": round((redis_after - redis_before) / timers, 1),
        "timers_still_pending": pending,
        "late_ok": flows["p99"] <= LATE_P99_TARGET_MS,
        "memory_ok": growth < RSS_GROWTH_TARGET,
    }


def report(r: dict[str, Any]) -> None:
    c, f = r["celery_late_ms"], r["flowqueue_late_ms"]
    print(f"(1) resume lateness, N={r['n']} concurrent {r['seconds']} s delays (ms after due)")
    print(f"    plain Celery countdown     p50 {c['p50']:>8}  p99 {c['p99']:>8}  max {c['max']:>8}")
    print(f"    flowqueue ctx.sleep_until  p50 {f['p50']:>8}  p99 {f['p99']:>8}  max {f['max']:>8}")
    print(
        f"    p99 flowqueue/celery = {r['p99_ratio']}; flowqueue p99 {f['p99']} ms "
        f"(target <= {LATE_P99_TARGET_MS} ms): {verdict(r['late_ok'])}"
    )
    print(f"(2) idle worker memory vs {r['timers']} pending timers (due in 1 h)")
    print(
        f"    worker RSS {r['worker_rss_before_mib']} MiB -> {r['worker_rss_after_mib']} MiB "
        f"({r['worker_rss_growth_mib']:+} MiB, {r['worker_rss_growth_pct']:+} %) "
        f"(target < {RSS_GROWTH_TARGET:.0%}): {verdict(r['memory_ok'])}"
    )
    print(
        f"    Redis used_memory +{r['redis_timers_mib']} MiB "
        f"({r['redis_bytes_per_timer']} bytes/timer); {r['timers_still_pending']} still pending"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="concurrent sleeps / countdowns")
    parser.add_argument("--seconds", type=float, default=1.0, help="sleep / countdown length")
    parser.add_argument("--timers", type=int, default=100_000, help="pending timers injected")
    cli(parser, run, report)


if __name__ == "__main__":
    main()
