"""Schedule lateness: flowqueue's schedules against Celery beat, on the same worker, in
the same run.

    .venv/bin/python bench/schedules.py [--schedules 10] [--seconds 30] [--warmup 3] [--json]

One throwaway redis-server and one ``celery -A flowqueue worker -c 2`` serve both sides
(this module is also their flows and tasks: FLOWQUEUE_WORKERS=schedules).
  (1) flowqueue: S schedules ``* * * * * *`` (every second) on a one-step flow; the
      worker's timer pump fires them. Lateness of a firing: its tick (flow.started's
      ``trigger.tick``) to the start of its step's body.
  (2) Celery beat: ``celery -A schedules beat`` with S entries due every whole second
      (``EverySecond``: beat's own interval schedule drifts, this one keeps to the
      second, as a cron tick does); lateness: the whole second to the start of the
      task's body. The flowqueue schedules are paused meanwhile.
Each side runs for ``--seconds`` after ``--warmup`` seconds not counted.
Target: flowqueue p99 lateness <= 250 ms.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from celery import shared_task
from celery.schedules import schedstate
from celery.schedules import schedule as celery_schedule

import flowqueue
from flowqueue import FlowContext, Schedule, step

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LATE_P99_TARGET_MS = 250.0
COUNT = int(os.environ.get("BENCH_SCHEDULES", "10"))
BODIES = "bench:schedules:bodies"  # hash: run id -> ms its step body started
BEAT_BODIES = "bench:beat:bodies"  # list: ms each beat task body started
_clients: dict[int, redis.Redis] = {}  # per process: the prefork pool forks


def _client() -> redis.Redis:
    client = _clients.get(os.getpid())
    if client is None:
        client = _clients[os.getpid()] = redis.Redis.from_url(os.environ["FLOWQUEUE_REDIS_URL"])
    return client


@step(
    flow="bench-schedule",
    entry=True,
    schedule=[Schedule("* * * * * *", name=f"bench-{i}") for i in range(COUNT)],
)
def scheduled(ctx: FlowContext, input: Any) -> None:
    _client().hset(BODIES, ctx.run_id, time.time_ns() // 1_000_000)


@shared_task(name="bench.beat_tick")
def beat_tick() -> None:
    _client().rpush(BEAT_BODIES, time.time_ns() // 1_000_000)


class EverySecond(celery_schedule):  # type: ignore[misc]  # celery ships no type hints
    """Due at each whole second (beat's ``schedule(1.0)`` counts from the last send)."""

    def __init__(self) -> None:
        super().__init__(run_every=timedelta(seconds=1))

    def is_due(self, last_run_at: datetime) -> schedstate:
        now, last = time.time(), last_run_at.timestamp()
        if now >= math.floor(last) + 1:
            return schedstate(True, math.floor(now) + 1 - now)
        return schedstate(False, math.floor(last) + 1 - now)

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return (self.__class__, ())


app = flowqueue.app  # what ``celery -A schedules beat`` loads
app.conf.beat_schedule = {
    f"beat-{i}": {"task": "bench.beat_tick", "schedule": EverySecond()} for i in range(COUNT)
}


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": round(pct(samples, 0.5), 1),
        "p99_ms": round(pct(samples, 0.99), 1),
        "max_ms": round(max(samples), 1),
    }


def run(schedules: int, seconds: float, warmup: float) -> dict[str, Any]:
    from flowqueue.backend.redis.embedded import EmbeddedRedis
    from flowqueue.devtools.worker import WorkerProcess
    from flowqueue.runtime.engine import flowqueue_of
    from flowqueue.settings import Settings

    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "FLOWQUEUE_REDIS_URL": server.url,
            "FLOWQUEUE_WORKERS": "schedules",
            "BENCH_SCHEDULES": str(schedules),
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        env.pop("CELERY_BROKER_URL", None)
        args = ["-c", "2", "--without-mingle", "--without-gossip", "--without-heartbeat"]
        client = redis.Redis.from_url(server.url)
        # This process reads and pauses only: it imports no flows (this file is __main__).
        fq = flowqueue_of(flowqueue.create_app(Settings(redis_url=server.url, workers="")))
        with WorkerProcess(env, Path(tmp) / "worker.log", args, cwd=ROOT):
            # (1) flowqueue: the worker's pump fires the schedules from its start.
            start_ms = int((time.time() + warmup) * 1000)
            time.sleep(warmup + seconds)
            end_ms = int(time.time() * 1000)
            names = [f"bench-{i}" for i in range(schedules)]
            for name in names:
                fq.schedules.pause(name, end_ms)
            time.sleep(2)  # the last firings' bodies
            late, started_late = _flowqueue_lateness(fq, client, start_ms, end_ms)
            # (2) Celery beat, the same worker.
            beat = subprocess.Popen(
                [
                    str(Path(sys.executable).with_name("celery")),
                    "-A",
                    "schedules",
                    "beat",
                    "-s",
                    str(Path(tmp) / "beat-schedule"),
                    "-l",
                    "WARNING",
                ],
                cwd=HERE,
                env=env,
                stdout=(Path(tmp) / "beat.log").open("wb"),
                stderr=subprocess.STDOUT,
            )
            try:
                beat_start = int((time.time() + warmup) * 1000)
                time.sleep(warmup + seconds)
                beat_end = int(time.time() * 1000)
            finally:
                beat.terminate()
                beat.wait(20)
            time.sleep(2)
            bodies = [int(v) for v in client.lrange(BEAT_BODIES, 0, -1)]
            beat_late = [b - b // 1000 * 1000 for b in bodies if beat_start <= b <= beat_end]
        client.close()
        fq.close()
    flow, celery = summary(late), summary([float(v) for v in beat_late])
    return {
        "schedules": schedules,
        "seconds": seconds,
        "flowqueue": flow,
        "flowqueue_run_started": summary(started_late),
        "celery_beat": celery,
        "p99_ratio": round(flow["p99_ms"] / max(celery["p99_ms"], 0.1), 2),
        "ok": flow["p99_ms"] <= LATE_P99_TARGET_MS,
    }


def _flowqueue_lateness(
    fq: Any, client: redis.Redis, start_ms: int, end_ms: int
) -> tuple[list[float], list[float]]:
    """(tick -> step body, tick -> flow.started) of each firing whose tick is in the window."""
    bodies = {k.decode(): int(v) for k, v in client.hgetall(BODIES).items()}
    late, started_late = [], []
    for run_id, body_ms in bodies.items():
        started = fq.store.read(run_id, limit=1)[0]
        tick = int(started.data["trigger"]["tick"])
        if start_ms <= tick <= end_ms:
            late.append(float(body_ms - tick))
            started_late.append(started.ts.timestamp() * 1000 - tick)
    return late, started_late


def report(r: dict[str, Any]) -> None:
    f, c = r["flowqueue"], r["celery_beat"]
    print(f"{r['schedules']} schedules every second, {r['seconds']} s each side, one worker -c 2")
    print(
        f"flowqueue schedules  {f['n']:>5} firings  p50 {f['p50_ms']:>6} ms  p99 "
        f"{f['p99_ms']:>6} ms  max {f['max_ms']:>6} ms  (tick -> step body)"
    )
    print(
        f"Celery beat          {c['n']:>5} sends    p50 {c['p50_ms']:>6} ms  p99 "
        f"{c['p99_ms']:>6} ms  max {c['max_ms']:>6} ms  (whole second -> task body)"
    )
    s = r["flowqueue_run_started"]
    print(
        f"  of which tick -> run started (flow.started): p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms"
    )
    verdict = "PASS" if r["ok"] else "MISS"
    print(
        f"p99 flowqueue / beat = {r['p99_ratio']}; flowqueue p99 <= {LATE_P99_TARGET_MS} ms: "
        f"{verdict}"
    )


def main() -> None:
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schedules", type=int, default=10, help="schedules / beat entries")
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds per side")
    parser.add_argument("--warmup", type=float, default=3, help="seconds not counted")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    options = vars(parser.parse_args())
    as_json = options.pop("json")
    result = run(**options)
    print(json.dumps(result, indent=2)) if as_json else report(result)


if __name__ == "__main__":
    main()
