"""Steady-state soak: runs of a flow at a fixed rate, one worker, one API process.

    .venv/bin/python bench/soak.py [--flow example-flow] [--minutes 30] [--rate 50]
                                   [--sse-clients 4] [--json]

One throwaway redis-server, one ``celery -A flowqueue worker -c 2`` and one
``flowqueue api`` process. This process starts runs of ``--flow`` (workers/:
``example-flow``, two steps: state, a log line, an emit; or ``order``, four: validate,
reserve stock and charge the card in parallel, ship once both are done) at ``--rate`` a
second, paced, for ``--minutes``, while ``--sse-clients`` SSE clients each follow the
newest run through the API to its end, then the next one. After ``--warmup-seconds``:
Every ``--sample-seconds``: the RSS of the worker (main process and pool children,
psutil) and of the API, and Redis' used_memory. Run latency is flow.started ->
flow.completed, the server times in the run's log (read from the lifecycle feed), per
``--bucket-seconds`` window (a minute) of completion: p50 / p99.
Flat RSS: the median of the last 5 windows' samples is within 10 % or 20 MiB (the
larger) of the median of window 2's (window 1 warms up). Stable latency: every window's
p99 is at most 1.2x window 1's. Kept up (else the latencies are a growing queue's): every
window after the first completes at least 95 % of the runs it started, and at most 5
seconds' worth of runs are ever in flight. Nothing to compare against in the same run:
the figures are raw.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import redis
from common import ApiProcess, cli, pct, verdict

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the example flows (workers/) for the client side too

from flowqueue import Settings, create_app, start_flow  # noqa: E402
from flowqueue.backend.redis.embedded import EmbeddedRedis  # noqa: E402
from flowqueue.devtools.worker import WorkerProcess  # noqa: E402

# The flows a soak can run (workers/), each with the input of its n-th run.
INPUTS: dict[str, Callable[[int], Any]] = {
    "example-flow": lambda n: {"name": f"user-{n}"},
    "order": lambda n: {
        "order_id": f"ord-{n:08d}",
        "items": [{"sku": "sku-1", "quantity": 2}],
        "card": "4000",
    },
}
MIB = 1024 * 1024
RSS_TOLERANCE = (0.10, 20.0)  # fraction of the baseline, MiB: the larger one applies
P99_TOLERANCE = 1.2
LAST_WINDOWS = 5
NOT_FOUND_RETRIES = 20  # a just-started run's stream, over a second (see _follow_run)
KEPT_UP_SECONDS = 5.0  # the most runs in flight at once, in seconds of starts


def rss_mib(pid: int) -> float:
    """RSS of ``pid`` and all its descendants (a prefork worker's pool), in MiB."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue  # a pool child replaced between listing and reading
    return round(total / MIB, 1)


class Soak:
    """The shared state of the starter, feed reader, SSE clients and sampler threads."""

    def __init__(self, app: Any, url: str, flow: str, bucket: float) -> None:
        self.app, self.url, self.flow, self.bucket = app, url, flow, bucket
        self.stop = threading.Event()  # starter, SSE clients, sampler
        self.drained = threading.Event()  # the feed reader, once the last runs ended
        self.ends = 0.0  # time.time() at the end of the measured span
        self.began = 0.0  # time.time() at the end of the warm-up
        self.newest = ""  # the run the SSE clients follow next
        self.started = 0
        self.completed = 0
        self.failed = 0
        self.start_ts: dict[str, float] = {}  # run -> flow.started server time
        self.latencies: dict[int, list[float]] = {}  # window -> ms
        self.starts: dict[int, int] = {}  # window -> runs started
        self.samples: list[dict[str, float]] = []
        self.sse = {"follows": 0, "frames": 0, "errors": 0, "not_found_retries": 0}
        self.sse_errors: dict[str, int] = {}  # what went wrong, by kind

    def sse_error(self, kind: str) -> None:
        self.sse["errors"] += 1
        self.sse_errors[kind] = self.sse_errors.get(kind, 0) + 1

    def window(self, at: float) -> int:
        return int((at - self.began) // self.bucket)

    def starter(self, rate: float) -> None:
        """``rate`` starts a second on an absolute schedule (a slow start is caught up)."""
        tick, n, t0 = 1.0 / rate, 0, time.monotonic()
        while not self.stop.is_set():
            self.newest = start_flow(self.flow, INPUTS[self.flow](n), app=self.app)
            now = time.time()
            if self.began and now >= self.began:
                self.starts[self.window(now)] = self.starts.get(self.window(now), 0) + 1
            n += 1
            self.started = n
            delay = t0 + n * tick - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)

    def feed_reader(self) -> None:
        """Pair each run's flow.started and flow.completed from the lifecycle feed."""
        store, after = self.app.flowqueue.store, None
        while True:
            stopping = self.drained.is_set()
            page = store.read_feed(after=after, limit=1000)
            for entry in page:
                event, after = entry.event, entry.id
                if event.kind == "flow.started":
                    self.start_ts[event.run_id] = event.ts.timestamp()
                elif event.kind in ("flow.completed", "flow.failed", "flow.cancelled"):
                    began = self.start_ts.pop(event.run_id, None)
                    ended = event.ts.timestamp()
                    if event.kind != "flow.completed":
                        self.failed += 1
                        continue
                    self.completed += 1
                    if began is not None and 0 < self.began <= ended < (self.ends or ended + 1):
                        ms = (ended - began) * 1000
                        self.latencies.setdefault(self.window(ended), []).append(ms)
            if stopping and not page:
                return
            if len(page) < 1000:
                time.sleep(0.2)

    async def follow(self, client: httpx.AsyncClient) -> None:
        """Follow the newest run to its end (the stream closes), then the next one."""
        last = ""
        while not self.stop.is_set():
            run = self.newest
            if run == last:  # no new run yet
                await asyncio.sleep(0.05)
                continue
            last = run
            try:
                await self._follow_run(client, run)
            except httpx.HTTPError as exc:
                self.sse_error(type(exc).__name__)
                await asyncio.sleep(1)

    async def _follow_run(self, client: httpx.AsyncClient, run: str) -> None:
        # start_flow records the start just after sending the entry steps: another process
        # sees the run "within milliseconds", so a 404 is retried for up to a second.
        for attempt in range(NOT_FOUND_RETRIES + 1):
            async with client.stream("GET", f"/api/_flows/{self.flow}/runs/{run}/stream") as r:
                if r.status_code == 404 and attempt < NOT_FOUND_RETRIES:
                    self.sse["not_found_retries"] += 1
                    await asyncio.sleep(1 / NOT_FOUND_RETRIES)
                    continue
                if r.status_code != 200:
                    self.sse_error(f"HTTP {r.status_code}")
                    return
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        self.sse["frames"] += 1
                self.sse["follows"] += 1
                return

    def sse_clients(self, port: int, clients: int) -> None:
        async def main() -> None:
            timeout = httpx.Timeout(30.0)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=timeout) as c:
                await asyncio.gather(*(self.follow(c) for _ in range(clients)))

        asyncio.run(main())

    def sampler(self, worker_pid: int, api_pid: int, every: float) -> None:
        client = redis.Redis.from_url(self.url)
        while not self.stop.wait(every):
            self.samples.append(
                {
                    "t_s": round(time.time() - self.began, 1),
                    "worker_rss_mib": rss_mib(worker_pid),
                    "api_rss_mib": rss_mib(api_pid),
                    "redis_used_mib": round(int(client.info("memory")["used_memory"]) / MIB, 1),
                    "started": self.started,
                    "in_flight": len(self.start_ts),
                }
            )
        client.close()


def rss_verdict(samples: list[dict[str, float]], key: str, bucket: float) -> dict[str, Any]:
    """Window 2's median against the last windows' median (see the module docstring)."""
    windows = max(int(s["t_s"] // bucket) for s in samples) + 1
    base = [s[key] for s in samples if int(s["t_s"] // bucket) == min(1, windows - 1)]
    last = [s[key] for s in samples if s["t_s"] // bucket >= windows - LAST_WINDOWS]
    baseline, final = statistics.median(base), statistics.median(last)
    allowed = max(RSS_TOLERANCE[0] * baseline, RSS_TOLERANCE[1])
    return {
        "baseline_mib": baseline,
        "last_mib": final,
        "growth_mib": round(final - baseline, 1),
        "allowed_mib": round(allowed, 1),
        "flat": abs(final - baseline) <= allowed,
    }


def distribution(ms: list[float]) -> dict[str, Any]:
    """Percentiles and a histogram of run latencies on 0, 1, 2, 5, 10, 20, 50, ... ms."""
    if not ms:
        return {}
    edges, scale = [0.0], 1.0
    while edges[-1] <= max(ms):
        edges += [step * scale for step in (1, 2, 5) if step * scale > edges[-1]]
        scale *= 10
    while len(edges) > 2 and edges[-2] > max(ms):
        edges.pop()
    counts = [0] * (len(edges) - 1)
    for x in ms:
        counts[bisect.bisect_right(edges, x) - 1] += 1
    return {
        **{f"p{q:g}": round(pct(ms, q / 100), 1) for q in (50, 90, 99, 99.9)},
        "max": round(max(ms), 1),
        "edges": edges,
        "counts": counts,
    }


def run(
    flow: str,
    minutes: float,
    rate: float,
    sse_clients: int,
    sample_seconds: float,
    bucket_seconds: float,
    warmup_seconds: float,
) -> dict[str, Any]:
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FLOWQUEUE_REDIS_URL": server.url, "FLOWQUEUE_WORKERS": "workers"}
        env.pop("CELERY_BROKER_URL", None)
        args = ["-c", "2", "--without-mingle", "--without-gossip"]
        with WorkerProcess(env, Path(tmp) / "worker.log", args, cwd=ROOT) as worker:
            api = ApiProcess(env, Path(tmp) / "api.log", log_level="warning")
            app = create_app(Settings(redis_url=server.url, workers="workers"))
            soak = Soak(app, server.url, flow, bucket_seconds)
            threads = [
                threading.Thread(target=soak.starter, args=(rate,)),
                threading.Thread(target=soak.feed_reader),
                threading.Thread(target=soak.sse_clients, args=(api.port, sse_clients)),
            ]
            try:
                for thread in threads:
                    thread.start()
                time.sleep(warmup_seconds)  # connections, pools, scripts; not measured
                soak.began = time.time()
                sampler = threading.Thread(
                    target=soak.sampler, args=(worker.process.pid, api.process.pid, sample_seconds)
                )
                sampler.start()
                threads.append(sampler)
                soak.ends = soak.began + minutes * 60
                soak.stop.wait(minutes * 60)
            finally:
                soak.stop.set()
                for thread in threads[2:]:
                    thread.join(60)
                deadline = time.monotonic() + 60  # the last runs finish (not measured)
                while soak.start_ts and time.monotonic() < deadline:
                    time.sleep(0.2)
                soak.drained.set()
                threads[1].join(60)
                api.stop()
                app.flowqueue.close()
    return summarise(soak, minutes, rate, sse_clients, sample_seconds, bucket_seconds)


def summarise(
    soak: Soak,
    minutes: float,
    rate: float,
    sse_clients: int,
    sample_seconds: float,
    bucket_seconds: float,
) -> dict[str, Any]:
    windows = []
    for number in sorted(soak.latencies):
        ms = soak.latencies[number]
        windows.append(
            {
                "window": number + 1,
                "started": soak.starts.get(number, 0),
                "completed": len(ms),
                "p50_ms": round(statistics.median(ms), 1),
                "p99_ms": round(pct(ms, 0.99), 1),
            }
        )
    every = [ms for window in soak.latencies.values() for ms in window]
    # Kept up: each window ended nearly all it started, and never more than KEPT_UP_SECONDS
    # of runs waited (a backlog shows as latency that only queueing explains).
    in_flight = max((s["in_flight"] for s in soak.samples), default=0)
    kept_up = all(w["completed"] >= 0.95 * w["started"] for w in windows[1:])
    kept_up = kept_up and in_flight <= KEPT_UP_SECONDS * rate
    first_p99 = windows[0]["p99_ms"] if windows else float("nan")
    worst = max((w["p99_ms"] / first_p99 for w in windows), default=float("nan"))
    samples = soak.samples
    rss = {
        name: rss_verdict(samples, f"{name}_rss_mib", bucket_seconds) if samples else {}
        for name in ("worker", "api")
    }
    return {
        "command": (
            f".venv/bin/python bench/soak.py --flow {soak.flow} --minutes {minutes:g} "
            f"--rate {rate:g} --sse-clients {sse_clients} --sample-seconds {sample_seconds:g} "
            f"--bucket-seconds {bucket_seconds:g}"
        ),
        "flow": soak.flow,
        "minutes": minutes,
        "rate": rate,
        "achieved_rate": round(sum(soak.starts.values()) / (minutes * 60), 1),
        "sse_clients": sse_clients,
        "bucket_seconds": bucket_seconds,
        "runs_completed": soak.completed,
        "runs_failed": soak.failed,
        "runs_unfinished": len(soak.start_ts),
        "sse": {**soak.sse, "error_kinds": soak.sse_errors},
        "max_in_flight": in_flight,
        "kept_up": kept_up,
        "windows": windows,
        "latency_ms": distribution(every),
        "samples": samples,
        "rss": rss,
        "p99_first_ms": first_p99,
        "p99_worst_ratio": round(worst, 2),
        "rss_flat": bool(rss["worker"].get("flat")) and bool(rss["api"].get("flat")),
        "p99_ok": worst <= P99_TOLERANCE,
        "ok": kept_up and worst <= P99_TOLERANCE and all(v.get("flat") for v in rss.values()),
    }


def report(r: dict[str, Any]) -> None:
    print(
        f"{r['minutes']:g} min of '{r['flow']}' runs at {r['rate']:g}/s (achieved "
        f"{r['achieved_rate']}/s), {r['sse_clients']} SSE clients following runs; "
        f"{r['runs_completed']} completed, {r['runs_failed']} failed, "
        f"{r['runs_unfinished']} unfinished at the end"
    )
    s = r["sse"]
    print(
        f"SSE: {s['follows']} runs followed to their end, {s['frames']} frames, "
        f"{s['errors']} errors {s.get('error_kinds') or ''}; "
        f"{s.get('not_found_retries', 0)} retries of a just-started run's 404"
    )
    print(f"window ({r['bucket_seconds']:g} s) | started | completed | p50 ms | p99 ms")
    for w in r["windows"]:
        print(
            f"{w['window']:>16} | {w['started']:>7} | {w['completed']:>9} | "
            f"{w['p50_ms']:>6} | {w['p99_ms']:>6}"
        )
    if d := r["latency_ms"]:
        print(
            "all windows, ms: "
            + ", ".join(f"{k} {d[k]}" for k in ("p50", "p90", "p99", "p99.9", "max"))
        )
    print(
        f"kept up: every window after the first completed >= 95 % of its starts, at most "
        f"{r['max_in_flight']} runs in flight (<= {KEPT_UP_SECONDS:g} s of starts): "
        f"{verdict(r['kept_up'])}"
    )
    print(
        f"p99: worst window / window 1 = {r['p99_worst_ratio']} (target <= {P99_TOLERANCE}): "
        f"{verdict(r['p99_ok'])}"
    )
    for name, v in r["rss"].items():
        if v:
            print(
                f"{name} RSS: window 2 {v['baseline_mib']} MiB, last {LAST_WINDOWS} windows "
                f"{v['last_mib']} MiB ({v['growth_mib']:+} MiB, allowed +-{v['allowed_mib']}): "
                f"{verdict(v['flat'])}"
            )
    print("samples (s: worker / API / Redis MiB): " + ", ".join(
        f"{x['t_s']:g}: {x['worker_rss_mib']}/{x['api_rss_mib']}/{x['redis_used_mib']}"
        for x in r["samples"]
    ))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--flow", choices=sorted(INPUTS), default="example-flow")
    parser.add_argument("--minutes", type=float, default=30.0, help="measured duration")
    parser.add_argument("--rate", type=float, default=50.0, help="runs started per second")
    parser.add_argument("--sse-clients", type=int, default=4, help="SSE clients following runs")
    parser.add_argument("--sample-seconds", type=float, default=10.0, help="RSS sample interval")
    parser.add_argument("--bucket-seconds", type=float, default=60.0, help="latency window")
    parser.add_argument("--warmup-seconds", type=float, default=10.0, help="unmeasured start")
    cli(parser, run, report)


if __name__ == "__main__":
    main()
