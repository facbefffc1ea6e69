"""flowqueue steps against plain Celery tasks, on the same worker, in the same run.

    .venv/bin/python bench/steps.py [--n 1000] [--chains 50] [--hops 200] [--rounds 5] [--json]

One throwaway redis-server and one ``celery -A flowqueue worker -c 2`` (prefork, the
project's celeryconfig: acks_late, prefetch 1, JSON) serve both sides; every task and
step body is the same counter INCR (bench/bench_flows.py). After a warm-up round, rounds
alternate:
  (a) N plain Celery tasks            vs (b) N single-step flowqueue runs
                                      and (a') N Celery tasks that record their end as
                                          Celery's Redis result backend does (a reference:
                                          what one recording round trip costs in Celery)
  (c) M 10-task Celery chains         vs     M 10-step sequential flowqueue flows
Each round gives a ratio per comparison; the verdict takes the median of the rounds (a
busy machine slows both sides of a round alike). Then, on the idle worker, step-to-step
latency: emit in step 1 -> body of step 2, beside a 2-task Celery chain's task-to-task
latency (the first task's return -> the second's body). Targets: single-step >= 0.90,
ten-step >= 0.85 (median of rounds); step-to-step p50 <= 3 ms, p99 <= 8 ms.
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
from celery import chain
from common import HERE, ROOT, cli, pct, verdict, worker

from flowqueue.backend.redis.embedded import EmbeddedRedis

THROUGHPUT_TARGET = 0.90
CHAIN_TARGET = 0.85
HOP_P50_TARGET_MS = 3.0
HOP_P99_TARGET_MS = 8.0


class Bench:
    def __init__(self, url: str) -> None:
        from bench_flows import COUNTER, noop, noop_recorded

        import flowqueue

        self.flowqueue = flowqueue
        self.app = flowqueue.app
        self.fq = self.app.flowqueue
        self.redis = redis.Redis.from_url(url)
        self.counter = COUNTER
        self.noop = self.app.tasks[noop.name]
        self.noop_recorded = self.app.tasks[noop_recorded.name]

    def _wait_counter(self, expected: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while int(self.redis.get(self.counter) or 0) < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {self.redis.get(self.counter)} of {expected} ran")
            time.sleep(0.002)

    def _wait_completed(self, runs: list[str], timeout: float = 600) -> None:
        keys, deadline = self.fq.store.commands.keys, time.monotonic() + timeout
        pending = runs
        while pending:
            pipe = self.redis.pipeline(transaction=False)
            for run in pending:
                pipe.hget(keys.run_meta(run), "status")
            statuses = pipe.execute()
            pending = [r for r, s in zip(pending, statuses, strict=True) if s != b"completed"]
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} runs did not complete")
            if pending:
                time.sleep(0.002)

    def timed(self, work: Callable[[], list[str]], expected_bodies: int) -> float:
        """Seconds from the first send until every body ran and every run completed."""
        self.redis.set(self.counter, 0)
        began = time.perf_counter()
        runs = work()
        self._wait_counter(expected_bodies)
        self._wait_completed(runs)
        return time.perf_counter() - began

    def celery_tasks(self, n: int) -> float:
        return self.timed(lambda: [self.noop.apply_async() for _ in range(n)] and [], n)

    def recorded_tasks(self, n: int) -> float:
        return self.timed(lambda: [self.noop_recorded.apply_async() for _ in range(n)] and [], n)

    def flow_runs(self, n: int) -> float:
        return self.timed(lambda: [self.flowqueue.start_flow("bench-one") for _ in range(n)], n)

    def celery_chains(self, m: int, length: int) -> float:
        def send() -> list[str]:
            for _ in range(m):
                chain(*[self.noop.si() for _ in range(length)]).apply_async()
            return []

        return self.timed(send, m * length)

    def flow_chains(self, m: int, length: int) -> float:
        return self.timed(
            lambda: [self.flowqueue.start_flow("bench-chain") for _ in range(m)], m * length
        )

    def celery_hops(self, k: int) -> list[float]:
        """Task-to-task latency (ms) of ``k`` two-task chains, one at a time: the first
        task's return -> the second's body (what a chain does instead of an emit)."""
        from bench_flows import HOPS_CELERY, hop_celery_a, hop_celery_b

        first, second = self.app.tasks[hop_celery_a.name], self.app.tasks[hop_celery_b.name]
        self.redis.delete(HOPS_CELERY)
        for done in range(1, k + 1):
            chain(first.si(), second.s()).apply_async()
            deadline = time.monotonic() + 30
            while int(self.redis.llen(HOPS_CELERY)) < done:
                if time.monotonic() > deadline:
                    raise TimeoutError("a chain's second task did not run")
                time.sleep(0.002)
        return [float(x) for x in self.redis.lrange(HOPS_CELERY, 0, -1)]

    def hops(self, k: int) -> list[float]:
        """Step-to-step latency (ms) of ``k`` two-step runs, one at a time."""
        latencies = []
        for _ in range(k):
            run = self.flowqueue.start_flow("bench-hop")
            self._wait_completed([run], timeout=30)
            latencies.append(float(self.flowqueue.get_run(run).steps["hop_b"].result))
        return latencies


def run(n: int, chains: int, hops: int, rounds: int) -> dict[str, Any]:
    sys.path[:0] = [str(HERE), str(ROOT)]
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        os.environ["FLOWQUEUE_REDIS_URL"] = server.url
        os.environ["FLOWQUEUE_WORKERS"] = "bench_flows"
        os.environ.pop("CELERY_BROKER_URL", None)
        with worker(server.url, Path(tmp) / "worker.log"):
            bench = Bench(server.url)
            length = 10
            bench.celery_tasks(min(n, 100))  # warm-up: connections, pools, scripts
            bench.flow_runs(min(n, 100))
            bench.flow_chains(min(chains, 5), length)
            totals = {"tasks": 0.0, "runs": 0.0, "chains": 0.0, "flows": 0.0, "recorded": 0.0}
            single: list[float] = []
            ten: list[float] = []
            floor: list[float] = []
            for _ in range(rounds):
                tasks, runs = bench.celery_tasks(n), bench.flow_runs(n)
                recorded = bench.recorded_tasks(n)
                celery_chains, flows = (
                    bench.celery_chains(chains, length),
                    bench.flow_chains(chains, length),
                )
                single.append(tasks / runs)  # same count each side: the throughput ratio
                ten.append(celery_chains / flows)
                floor.append(tasks / recorded)
                for key, took in zip(
                    totals, (tasks, runs, celery_chains, flows, recorded), strict=True
                ):
                    totals[key] += took
            latencies = bench.hops(hops)
            celery_latencies = bench.celery_hops(hops)
    tasks_s = n * rounds / totals["tasks"]
    runs_s = n * rounds / totals["runs"]
    chains_s = chains * rounds / totals["chains"]
    flows_s = chains * rounds / totals["flows"]
    recorded_s = n * rounds / totals["recorded"]
    p50, p99 = statistics.median(latencies), pct(latencies, 0.99)
    single_ratio, ten_ratio = statistics.median(single), statistics.median(ten)
    return {
        "n": n,
        "chains": chains,
        "rounds": rounds,
        "celery_tasks_per_s": round(tasks_s, 1),
        "flowqueue_runs_per_s": round(runs_s, 1),
        "single_step_ratio": round(single_ratio, 3),
        "single_step_ratios": [round(r, 3) for r in single],
        "celery_recorded_tasks_per_s": round(recorded_s, 1),
        "recorded_task_ratio": round(statistics.median(floor), 3),
        "recorded_task_ratios": [round(r, 3) for r in floor],
        "celery_chains_per_s": round(chains_s, 2),
        "flowqueue_10_step_flows_per_s": round(flows_s, 2),
        "ten_step_ratio": round(ten_ratio, 3),
        "ten_step_ratios": [round(r, 3) for r in ten],
        "hop_p50_ms": round(p50, 2),
        "hop_p99_ms": round(p99, 2),
        "hop_latencies_ms": [round(x, 3) for x in latencies],
        "celery_hop_p50_ms": round(statistics.median(celery_latencies), 2),
        "celery_hop_p99_ms": round(pct(celery_latencies, 0.99), 2),
        "single_step_ok": single_ratio >= THROUGHPUT_TARGET,
        "ten_step_ok": ten_ratio >= CHAIN_TARGET,
        "hop_ok": p50 <= HOP_P50_TARGET_MS and p99 <= HOP_P99_TARGET_MS,
    }


def report(r: dict[str, Any]) -> None:
    print(f"{r['rounds']} rounds, N={r['n']} tasks/runs, M={r['chains']} chains/flows per round")
    print(f"(a) plain Celery no-op tasks     {r['celery_tasks_per_s']:>9} tasks/s")
    print(f"(b) single-step flowqueue runs   {r['flowqueue_runs_per_s']:>9} runs/s")
    print(
        f"    (b)/(a) median of rounds = {r['single_step_ratio']} {r['single_step_ratios']} "
        f"(target >= {THROUGHPUT_TARGET}): {verdict(r['single_step_ok'])}"
    )
    print(
        f"(a') Celery tasks recording their end as its Redis result backend does (one round "
        f"trip): {r['celery_recorded_tasks_per_s']} tasks/s; (a')/(a) median = "
        f"{r['recorded_task_ratio']} {r['recorded_task_ratios']}"
    )
    print(f"(c) 10-task Celery chains        {r['celery_chains_per_s']:>9} chains/s")
    print(f"    10-step flowqueue flows      {r['flowqueue_10_step_flows_per_s']:>9} flows/s")
    print(
        f"    flows/chains median of rounds = {r['ten_step_ratio']} {r['ten_step_ratios']} "
        f"(target >= {CHAIN_TARGET}): {verdict(r['ten_step_ok'])}"
    )
    print(
        f"step-to-step latency (emit -> next step body), idle worker: "
        f"p50 {r['hop_p50_ms']} ms, p99 {r['hop_p99_ms']} ms (target p50 <= "
        f"{HOP_P50_TARGET_MS} ms, p99 <= {HOP_P99_TARGET_MS} ms): {verdict(r['hop_ok'])}"
    )
    print(
        f"    Celery, a 2-task chain (return -> next body), same worker: "
        f"p50 {r['celery_hop_p50_ms']} ms, p99 {r['celery_hop_p99_ms']} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="tasks / runs per round")
    parser.add_argument("--chains", type=int, default=50, help="chains / flows per round")
    parser.add_argument("--hops", type=int, default=200, help="two-step runs for latency")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds")
    cli(parser, run, report)


if __name__ == "__main__":
    main()
