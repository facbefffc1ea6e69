"""flowqueue durable sleeps against plain Celery countdowns, on the same worker, in the same run.

    .venv/bin/python bench/timers.py [--n 1000] [--seconds 1] [--background 1000]
                                     [--measured 200] [--timers 100000]
                                     [--celery-timers 20000] [--json]

One throwaway redis-server and one ``celery -A flowqueue worker -c 2`` (the project's
celeryconfig) serve both sides (tasks and steps in bench/bench_flows.py). After a small
warm-up of each:
  (1) burst: N Celery tasks that each send a continuation with a countdown of S seconds,
      against N "bench-sleep" runs whose step sleeps until S seconds after it first ran;
      each continuation records how many ms after its due time it ran. Also: the peak
      number of runs asleep at once and the wall time until all N are done.
  (2) under load: B runs asleep for half an hour (B countdowns of half an hour held by
      the Celery worker), then M more S-second sleeps (countdowns); their lateness.
  (3) worker memory vs pending delays: RSS of the idle worker (main process and pool)
      before and after P flowqueue timers due in an hour are written to the timers
      sorted set (and the Redis memory they take), against C Celery countdowns of an
      hour, which the worker holds in memory.
The flowqueue measurements come first: Celery's held countdowns stay in the worker.
Targets: flowqueue p99 lateness <= 250 ms; worker RSS growth < 5 % with P timers.
BENCH_CONCURRENCY sets the worker's pool size (default 2, this machine's core count).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from common import cli, pct, verdict
from steps import HERE, ROOT, worker

from flowqueue.backend.redis.embedded import EmbeddedRedis
from flowqueue.backend.redis.keys import Keys
from flowqueue.model.timers import TimerSpec, now_ms

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
        from bench_flows import LATE_CELERY, LATE_FLOWQUEUE, late, late_first
        from steps import Bench as StepsBench

        import flowqueue

        self.flowqueue = flowqueue
        self.steps = StepsBench(url)  # its _wait_completed
        self.redis = redis.Redis.from_url(url)
        self.keys = Keys(flowqueue.app.flowqueue.settings.key_prefix)
        self.late = flowqueue.app.tasks[late.name]
        self.late_first = flowqueue.app.tasks[late_first.name]
        self.lists = {"celery": LATE_CELERY, "flowqueue": LATE_FLOWQUEUE}
        self.peak_asleep = 0

    def _collect(self, side: str, n: int, timeout: float = 600) -> list[float]:
        key, deadline = self.lists[side], time.monotonic() + timeout
        while (done := self.redis.llen(key)) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{side}: only {done} of {n} bodies ran")
            if side == "flowqueue":
                self.peak_asleep = max(self.peak_asleep, self.asleep())
            time.sleep(0.01)
        values = [float(v) for v in self.redis.lrange(key, 0, -1)]
        self.redis.delete(key)
        return values

    def asleep(self) -> int:
        """Runs whose wake timer is pending (not yet claimed by a resumed delivery)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(self.keys.timers).zcard(self.keys.timers_handed)
        return sum(pipe.execute())

    def celery(self, n: int, seconds: float) -> list[float]:
        for _ in range(n):
            self.late_first.delay(seconds)
        return self._collect("celery", n)

    def flows(self, n: int, seconds: float) -> list[float]:
        self.peak_asleep = 0
        runs = [self.flowqueue.start_flow("bench-sleep", {"seconds": seconds}) for _ in range(n)]
        late = self._collect("flowqueue", n)
        self.steps._wait_completed(runs)
        return late

    def timed(self, work: Callable[[], list[float]]) -> tuple[list[float], float]:
        began = time.perf_counter()
        return work(), time.perf_counter() - began

    def sleepers(self, count: int, seconds: float) -> list[str]:
        """``count`` runs asleep for ``seconds``, once all of them are asleep."""
        base = self.asleep()
        runs = [
            self.flowqueue.start_flow("bench-sleep", {"seconds": seconds}) for _ in range(count)
        ]
        deadline = time.monotonic() + 300
        while self.asleep() < base + count:
            if time.monotonic() > deadline:
                raise TimeoutError("the background runs did not all fall asleep")
            time.sleep(0.05)
        return runs

    def held_countdowns(self, count: int, seconds: float) -> None:
        """``count`` Celery countdowns of ``seconds``, once the worker holds them all."""
        for start in range(0, count, 1000):
            with self.late.app.producer_or_acquire() as producer:
                for _ in range(start, min(start + 1000, count)):
                    self.late.apply_async(
                        args=[time.time() + seconds], countdown=seconds, producer=producer
                    )
        deadline = time.monotonic() + 600
        while self.redis.llen("celery") > 0:  # the worker took them into memory
            if time.monotonic() > deadline:
                raise TimeoutError("the worker did not take every countdown")
            time.sleep(0.1)
        time.sleep(1)

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


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b > 0 else None


def run(
    n: int, seconds: float, background: int, measured: int, timers: int, celery_timers: int
) -> dict[str, Any]:
    sys.path[:0] = [str(HERE), str(ROOT)]
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        os.environ["FLOWQUEUE_REDIS_URL"] = server.url
        os.environ["FLOWQUEUE_WORKERS"] = "bench_flows"
        os.environ.pop("CELERY_BROKER_URL", None)
        with worker(server.url, Path(tmp) / "worker.log") as proc:
            pid = proc.process.pid
            bench = Bench(server.url)
            bench.celery(min(n, 50), seconds)  # warm-up: connections, pools, scripts
            bench.flows(min(n, 50), seconds)
            # (1) burst
            celery, celery_wall = bench.timed(lambda: bench.celery(n, seconds))
            flows, flows_wall = bench.timed(lambda: bench.flows(n, seconds))
            peak = bench.peak_asleep
            # (3) flowqueue: memory with pending timers
            time.sleep(1)  # let the worker settle
            rss_before, redis_before = mean_rss(pid), bench.used_memory()
            bench.inject(timers)
            redis_after = bench.used_memory()
            time.sleep(5)  # ~50 pump polls over the pending timers
            rss_after = mean_rss(pid)
            pending = int(bench.redis.zcard(bench.keys.timers))
            bench.redis.delete(bench.keys.timers)
            # (2) flowqueue under load: background runs asleep, then measured sleeps
            background_runs = bench.sleepers(background, 1800)
            loaded_flows = bench.flows(measured, seconds)
            for run_id in background_runs:
                bench.flowqueue.cancel(run_id, "benchmark over")
            # (2) and (3) for Celery: its countdowns stay in the worker's memory
            bench.held_countdowns(background, 1800)
            loaded_celery = bench.celery(measured, seconds)
            celery_rss_before = mean_rss(pid)
            bench.held_countdowns(celery_timers, 3600)
            celery_rss_after = mean_rss(pid)
    growth = (rss_after - rss_before) / rss_before
    c, f = summary(celery), summary(flows)
    lc, lf = summary(loaded_celery), summary(loaded_flows)
    celery_growth = celery_rss_after - celery_rss_before
    return {
        "n": n,
        "seconds": seconds,
        "burst": {
            "celery_late_ms": c,
            "flowqueue_late_ms": f,
            "p99_ratio": ratio(f["p99"], c["p99"]),
            "celery_wall_s": round(celery_wall, 2),
            "flowqueue_wall_s": round(flows_wall, 2),
            "flowqueue_peak_asleep": peak,
        },
        "loaded": {
            "background": background,
            "measured": measured,
            "celery_late_ms": lc,
            "flowqueue_late_ms": lf,
            "p99_ratio": ratio(lf["p99"], lc["p99"]),
        },
        "memory": {
            "timers": timers,
            "worker_rss_before_mib": round(rss_before / MIB, 1),
            "worker_rss_after_mib": round(rss_after / MIB, 1),
            "worker_rss_growth_mib": round((rss_after - rss_before) / MIB, 2),
            "worker_rss_growth_pct": round(growth * 100, 2),
            "redis_timers_mib": round((redis_after - redis_before) / MIB, 1),
            "redis_bytes_per_timer": round((redis_after - redis_before) / timers, 1),
            "timers_still_pending": pending,
            "celery_timers": celery_timers,
            "celery_rss_growth_mib": round(celery_growth / MIB, 1),
            "celery_bytes_per_countdown": round(celery_growth / celery_timers),
        },
        "late_ok": max(f["p99"], lf["p99"]) <= LATE_P99_TARGET_MS,
        "memory_ok": growth < RSS_GROWTH_TARGET,
    }


def report(r: dict[str, Any]) -> None:
    b, ld, m = r["burst"], r["loaded"], r["memory"]
    c, f = b["celery_late_ms"], b["flowqueue_late_ms"]
    print(f"(1) burst: N={r['n']} continuations due {r['seconds']} s after their step ran")
    print(f"    plain Celery countdown     p50 {c['p50']:>8}  p99 {c['p99']:>8}  max {c['max']:>8}")
    print(f"    flowqueue ctx.sleep_until  p50 {f['p50']:>8}  p99 {f['p99']:>8}  max {f['max']:>8}")
    print(
        f"    p99 flowqueue/celery = {b['p99_ratio']}; all done in {b['flowqueue_wall_s']} s "
        f"(Celery {b['celery_wall_s']} s); at most {b['flowqueue_peak_asleep']} runs asleep at once"
    )
    c, f = ld["celery_late_ms"], ld["flowqueue_late_ms"]
    print(f"(2) {ld['measured']} sleeps of {r['seconds']} s while {ld['background']} runs sleep")
    print(f"    plain Celery countdown     p50 {c['p50']:>8}  p99 {c['p99']:>8}  max {c['max']:>8}")
    print(f"    flowqueue ctx.sleep_until  p50 {f['p50']:>8}  p99 {f['p99']:>8}  max {f['max']:>8}")
    worst = max(b["flowqueue_late_ms"]["p99"], f["p99"])
    print(
        f"    p99 flowqueue/celery = {ld['p99_ratio']}; flowqueue p99 at most {worst} ms "
        f"(target <= {LATE_P99_TARGET_MS} ms): {verdict(r['late_ok'])}"
    )
    print(f"(3) idle worker memory vs {m['timers']} pending timers (due in 1 h)")
    print(
        f"    worker RSS {m['worker_rss_before_mib']} MiB -> {m['worker_rss_after_mib']} MiB "
        f"({m['worker_rss_growth_mib']:+} MiB, {m['worker_rss_growth_pct']:+} %) "
        f"(target < {RSS_GROWTH_TARGET:.0%}): {verdict(r['memory_ok'])}"
    )
    print(
        f"    Redis used_memory +{m['redis_timers_mib']} MiB "
        f"({m['redis_bytes_per_timer']} bytes/timer); {m['timers_still_pending']} still pending"
    )
    print(
        f"    plain Celery: {m['celery_timers']} countdowns of 1 h held by the worker: RSS "
        f"{m['celery_rss_growth_mib']:+} MiB ({m['celery_bytes_per_countdown']} bytes each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="burst: sleeps / countdowns")
    parser.add_argument("--seconds", type=float, default=1.0, help="sleep / countdown length")
    parser.add_argument("--background", type=int, default=1000, help="runs asleep meanwhile")
    parser.add_argument("--measured", type=int, default=200, help="sleeps measured under load")
    parser.add_argument("--timers", type=int, default=100_000, help="pending timers injected")
    parser.add_argument(
        "--celery-timers", type=int, default=20_000, help="Celery countdowns held in memory"
    )
    cli(parser, run, report)


if __name__ == "__main__":
    main()
