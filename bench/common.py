"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from flowqueue.backend.redis.embedded import free_port
from flowqueue.devtools.worker import WorkerProcess

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "2"))  # the worker's pool size


def worker(url: str, log_path: Path, flows: str = "bench_flows", **env: str) -> WorkerProcess:
    """``celery -A flowqueue worker -c BENCH_CONCURRENCY`` serving ``flows`` (modules of
    bench/), on the project's celeryconfig; ``env`` adds variables."""
    environment = {
        **os.environ,
        "FLOWQUEUE_REDIS_URL": url,
        "FLOWQUEUE_WORKERS": flows,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **env,
    }
    args = ["-c", str(CONCURRENCY), "--without-mingle", "--without-gossip", "--without-heartbeat"]
    return WorkerProcess(environment, log_path, args, cwd=ROOT)


class ApiProcess:
    """``flowqueue api`` (the console script) on a free port, once /healthz answers and
    each of its ``workers`` processes has started (their start lines need ``info``)."""

    def __init__(
        self, env: dict[str, str], log: Path, workers: int = 1, log_level: str = "info"
    ) -> None:
        self.port = free_port()
        command = [str(Path(sys.executable).with_name("flowqueue")), "api"]
        command += ["--port", str(self.port), "--log-level", log_level]
        if workers > 1:  # so that a flowqueue without --workers runs it too
            command += ["--workers", str(workers)]
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while not self._ready(log, workers):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the API did not start; its log:\n{log.read_text()}")
            time.sleep(0.1)

    def _ready(self, log: Path, workers: int) -> bool:
        if workers > 1 and log.read_bytes().count(b"Application startup complete") < workers:
            return False
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def cli(
    parser: argparse.ArgumentParser,
    run: Callable[..., dict[str, Any]],
    report: Callable[[dict[str, Any]], None],
) -> None:
    """Parse options, run, and print the report (or JSON with --json); --json-out PATH
    also writes the JSON there, with the command that made it (bench/plots.py draws
    docs/bench/<script>.json)."""
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--json-out", type=Path, metavar="PATH", help="also write the result as JSON to PATH"
    )
    options = vars(parser.parse_args())
    as_json = options.pop("json")
    json_out = options.pop("json_out")
    result = run(**options)
    result.setdefault("command", " ".join([".venv/bin/python", *sys.argv]))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
