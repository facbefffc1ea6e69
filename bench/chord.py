"""A 5-branch fan-out/join flow against a Celery chord, on the same worker, in the same run.

    .venv/bin/python bench/chord.py [--m 200] [--rounds 5] [--json]

One throwaway redis-server and one ``celery -A flowqueue worker -c 2`` (the project's
celeryconfig) serve both sides; Celery's Redis result backend (CELERY_RESULT_BACKEND,
on the same server) is on for the chord, as a chord needs one. Per round, M of each:
  (a) ``chord([branch.si()] * 5, join.s(key))``: five tasks, then the callback;
  (b) a flow of five entry steps that each emit, and a step that joins the five events.
Every body is bench_flows.body (the counter INCR); a join also counts itself under its
run (bench/bench_join.py). A side's time runs from the first send until all 6 x M bodies
ran and all M joins did (and, for flows, every run is completed). After a warm-up, rounds
alternate which side goes first; the figures are the medians of the rounds. At the end,
each join must have run exactly once per run/chord. Target: flows >= 1.0x chords.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from celery import Celery, chord
from common import CONCURRENCY, HERE, ROOT, cli, verdict, worker

from flowqueue import Settings, create_app, start_flow
from flowqueue.backend.redis.embedded import EmbeddedRedis

sys.path[:0] = [str(HERE), str(ROOT)]  # bench_join, for this process too

RATIO_TARGET = 1.0


class Bench:
    def __init__(self, app: Celery, url: str) -> None:
        from bench_flows import COUNTER
        from bench_join import BRANCHES, FLOW, JOINS, chord_branch, chord_join

        self.app, self.redis = app, redis.Redis.from_url(url)
        self.counter, self.joins, self.flow, self.branches = COUNTER, JOINS, FLOW, BRANCHES
        self.branch = app.tasks[chord_branch.name]
        self.join = app.tasks[chord_join.name]
        self.meta = app.flowqueue.keys.run_meta
        self.sent: dict[str, list[str]] = {"chord": [], "flow": []}

    def _wait(self, bodies: int, joins: int, runs: list[str], timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while True:
            done = int(self.redis.get(self.counter) or 0) >= bodies
            done = done and self.redis.hlen(self.joins) >= joins
            if done and runs:
                pipe = self.redis.pipeline(transaction=False)
                for run in runs:
                    pipe.hget(self.meta(run), "status")
                done = all(status == b"completed" for status in pipe.execute())
            if done:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{int(self.redis.get(self.counter) or 0)} of {bodies} bodies and "
                    f"{self.redis.hlen(self.joins)} of {joins} joins ran in {timeout} s; "
                    "see the worker log"
                )
            time.sleep(0.002)

    def _timed(self, side: str, send: Callable[[], list[str]], m: int) -> tuple[float, float]:
        """Seconds from the first send until every body, join and run is done; and of
        those, the seconds sending took."""
        self.redis.set(self.counter, 0)
        joins_before = int(self.redis.hlen(self.joins))
        began = time.perf_counter()
        keys = send()
        sent = time.perf_counter() - began
        self._wait(m * (self.branches + 1), joins_before + m, keys if side == "flow" else [])
        elapsed = time.perf_counter() - began
        self.sent[side] += keys
        return elapsed, sent

    def chords(self, m: int) -> tuple[float, float]:
        def send() -> list[str]:
            keys = [f"chord-{uuid.uuid4().hex}" for _ in range(m)]
            for key in keys:
                header = [self.branch.si() for _ in range(self.branches)]
                chord(header)(self.join.s(key))
            return keys

        return self._timed("chord", send, m)

    def flows(self, m: int) -> tuple[float, float]:
        return self._timed(
            "flow", lambda: [start_flow(self.flow, app=self.app) for _ in range(m)], m
        )

    def exactly_once(self) -> dict[str, dict[str, int]]:
        """Per side: joins expected, run once, run more than once, not run."""
        raw: dict[bytes, bytes] = self.redis.hgetall(self.joins)  # type: ignore[assignment]
        counts = {k.decode(): int(v) for k, v in raw.items()}
        out = {}
        for side, keys in self.sent.items():
            ran = [counts.get(key, 0) for key in keys]
            out[side] = {
                "expected": len(keys),
                "once": sum(1 for n in ran if n == 1),
                "duplicated": sum(1 for n in ran if n > 1),
                "missing": sum(1 for n in ran if n == 0),
            }
        return out


def drop_pending(app: Celery) -> None:
    """Unsubscribe from the chords' header results while Redis is up. Celery's client
    holds them until it reads them (this sender never does); otherwise each one's
    ``__del__`` tries to unsubscribe at interpreter exit, from a server that has gone."""
    backend = app.backend
    for waiters in list(backend._pending_results.concrete.values()):
        for result in list(waiters.values()):
            backend.remove_pending_result(result)


def run(m: int, rounds: int) -> dict[str, Any]:
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        os.environ["FLOWQUEUE_REDIS_URL"] = server.url
        os.environ["CELERY_RESULT_BACKEND"] = server.url  # the client sends the chords
        os.environ.pop("CELERY_BROKER_URL", None)
        import bench_join  # noqa: F401 - registers the steps and tasks before the app

        app = create_app(Settings(redis_url=server.url, workers="bench_join"))
        with worker(server.url, Path(tmp) / "worker.log", "bench_join"):  # inherits the backend
            bench = Bench(app, server.url)
            bench.chords(min(m, 20))  # warm-up: connections, pools, scripts
            bench.flows(min(m, 20))
            per_round = []
            for number in range(rounds):
                # Alternate who goes first, so drift on a shared machine hits both alike.
                if number % 2:
                    flow_s, chord_s = bench.flows(m), bench.chords(m)
                else:
                    chord_s, flow_s = bench.chords(m), bench.flows(m)
                per_round.append(
                    {
                        "chord_joins_per_s": round(m / chord_s[0], 1),
                        "flow_joins_per_s": round(m / flow_s[0], 1),
                        "ratio": round(chord_s[0] / flow_s[0], 3),
                        "chord_send_s": round(chord_s[1], 3),
                        "flow_send_s": round(flow_s[1], 3),
                    }
                )
            time.sleep(1)  # a late duplicate join would land by now
            once = bench.exactly_once()
            drop_pending(app)
            app.flowqueue.close()
    chord_rate = statistics.median(r["chord_joins_per_s"] for r in per_round)
    flow_rate = statistics.median(r["flow_joins_per_s"] for r in per_round)
    ratio = flow_rate / chord_rate
    exact = all(s["once"] == s["expected"] for s in once.values())
    return {
        "command": f".venv/bin/python bench/chord.py --m {m} --rounds {rounds}",
        "branches": 5,
        "m": m,
        "rounds": rounds,
        "concurrency": CONCURRENCY,
        "per_round": per_round,
        "celery_chord_joins_per_s": round(chord_rate, 1),
        "flowqueue_joins_per_s": round(flow_rate, 1),
        "ratio": round(ratio, 3),
        "exactly_once": once,
        "ratio_ok": ratio >= RATIO_TARGET,
        "exactly_once_ok": exact,
    }


def report(r: dict[str, Any]) -> None:
    print(
        f"{r['rounds']} rounds of M={r['m']} fan-out/joins of {r['branches']} branches per side "
        f"(worker -c {r['concurrency']}); medians:"
    )
    print(f"(a) Celery chord (group + callback)  {r['celery_chord_joins_per_s']:>8} joins/s")
    print(f"(b) flowqueue 5-branch join flow     {r['flowqueue_joins_per_s']:>8} joins/s")
    print(f"    (b)/(a) = {r['ratio']} (target >= {RATIO_TARGET}): {verdict(r['ratio_ok'])}")
    rounds = r["per_round"]
    print("    per round (b)/(a): " + ", ".join(str(x["ratio"]) for x in rounds))
    print(
        "    of which sending (median s): chords "
        f"{statistics.median(x['chord_send_s'] for x in rounds)}, flows "
        f"{statistics.median(x['flow_send_s'] for x in rounds)}"
    )
    for side, s in r["exactly_once"].items():
        print(
            f"{side:>5} joins: {s['once']} of {s['expected']} ran exactly once, "
            f"{s['duplicated']} more than once, {s['missing']} never"
        )
    print(f"exactly-once join: {verdict(r['exactly_once_ok'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--m", type=int, default=200, help="joins per side and round")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds")
    cli(parser, run, report)


if __name__ == "__main__":
    main()
