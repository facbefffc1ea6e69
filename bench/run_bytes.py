"""Redis memory per run of the ``order`` example flow, against plain Celery task results.

    .venv/bin/python bench/run_bytes.py [--n 200] [--json]

One throwaway redis-server and one ``celery -A flowqueue worker -c 2`` run N ``order``
runs (workers/orders.py: validate; reserve stock and charge the card in parallel; ship)
to completion. Then every key of each run (``fq:run:{<run>}*``) is measured with
``MEMORY USAGE ... SAMPLES 0`` and summed: mean / median / max per run, and by key.
What runs share is shown apart, per run: the flow index and expiry entries (one member
each), and the lifecycle feed (capped at FLOWQUEUE_FEED_MAXLEN entries in all).
The reference, on the same server: the results Celery's Redis result backend stores
(``celery-task-meta-<id>``) for the same four return values, one task each, as a
four-task chain with results on would. Target: 4 KB or less per run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import redis
from celery import Celery, states
from common import cli, verdict

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the example flows (workers/) for the client side too

from flowqueue import create_app, start_flow  # noqa: E402
from flowqueue.backend.redis.embedded import EmbeddedRedis  # noqa: E402
from flowqueue.devtools.worker import WorkerProcess  # noqa: E402
from flowqueue.settings import Settings  # noqa: E402

TARGET_BYTES = 4096


def order(i: int) -> dict[str, Any]:
    return {"order_id": f"ord-{i:06d}", "items": [{"sku": "sku-1", "quantity": 2}], "card": "4000"}


def wait_completed(client: redis.Redis, meta_key: Any, runs: list[str], timeout: float) -> None:
    deadline, pending = time.monotonic() + timeout, runs
    while pending:
        statuses = [client.hget(meta_key(run), "status") for run in pending]
        if any(s not in (None, b"running", b"completed") for s in statuses):
            raise RuntimeError(f"a run did not complete: {statuses}")
        pending = [run for run, s in zip(pending, statuses, strict=True) if s != b"completed"]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} runs still running")
        time.sleep(0.05)


def usage(client: redis.Redis, key: bytes | str) -> int:
    return int(client.memory_usage(key, samples=0) or 0)


def celery_results(url: str, values: list[Any], n: int) -> list[int]:
    """Bytes of ``n`` task results per value, as Celery's Redis backend stores them."""
    app = Celery("reference", broker=url, backend=url)
    app.conf.result_serializer = "json"
    client = redis.Redis.from_url(url)
    sizes = []
    for _ in range(n):
        total = 0
        for value in values:
            task_id = str(uuid.uuid4())
            app.backend.store_result(task_id, value, states.SUCCESS)
            total += usage(client, app.backend.get_key_for_task(task_id))
        sizes.append(total)
    return sizes


def run(n: int) -> dict[str, Any]:
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FLOWQUEUE_REDIS_URL": server.url, "FLOWQUEUE_WORKERS": "workers"}
        args = ["-c", "2", "-n", "bytes@%h", "--without-mingle", "--without-gossip"]
        with WorkerProcess(env, Path(tmp) / "worker.log", args, cwd=ROOT):
            app = create_app(Settings(redis_url=server.url, workers="workers"))
            fq = app.flowqueue
            keys, client = fq.keys, redis.Redis.from_url(server.url)
            runs = [start_flow("order", order(i), app=app) for i in range(n)]
            wait_completed(client, keys.run_meta, runs, timeout=120 + n)
            time.sleep(0.5)  # late step events land (none expected: the run has ended)
            per_run: list[int] = []
            by_key: dict[str, list[int]] = defaultdict(list)
            for run_id in runs:
                total = 0
                run_keys: list[bytes] = client.keys(f"{keys.prefix}:run:{{{run_id}}}*")  # type: ignore[assignment]
                for key in run_keys:
                    size = usage(client, key)
                    total += size
                    by_key[key.decode().rsplit("}", 1)[1] or "(log)"].append(size)
                per_run.append(total)
            shared = {
                "index": usage(client, keys.flow_runs("order")) / n,
                "expiry": usage(client, keys.flow_expiry("order")) / n,
                "feed": usage(client, keys.feed) / n,
            }
            ship = fq.store.read(runs[-1])
            results = [e.data.get("result") for e in ship if e.kind == "step.completed"]
            version = client.info("server")["redis_version"]
            fq.close()
        reference = celery_results(server.url, results, min(n, 50))
    mean = statistics.mean(per_run)
    celery_four = statistics.mean(reference)
    return {
        "command": f".venv/bin/python bench/run_bytes.py --n {n}",
        "n": n,
        "redis": version,
        "mean_bytes": round(mean),
        "median_bytes": round(statistics.median(per_run)),
        "max_bytes": max(per_run),
        "by_key": {k: round(statistics.mean(v)) for k, v in sorted(by_key.items())},
        "shared_per_run": {k: round(v) for k, v in shared.items()},
        "celery_one_result_bytes": round(celery_four / max(1, len(results))),
        "celery_four_results_bytes": round(celery_four),
        "ratio_to_four_results": round(mean / celery_four, 2),
        "ok": max(per_run) <= TARGET_BYTES,
    }


def report(r: dict[str, Any]) -> None:
    print(f"{r['n']} completed order runs (Redis {r['redis']}); MEMORY USAGE of each run's keys:")
    print(
        f"  mean {r['mean_bytes']} B, median {r['median_bytes']} B, max {r['max_bytes']} B "
        f"(target <= {TARGET_BYTES} B): {verdict(r['ok'])}"
    )
    print("  by key (mean): " + ", ".join(f"{k} {v} B" for k, v in r["by_key"].items()))
    shared = r["shared_per_run"]
    print(
        f"  shared, per run: index {shared['index']} B, expiry set {shared['expiry']} B, "
        f"lifecycle feed {shared['feed']} B (the feed is capped at FLOWQUEUE_FEED_MAXLEN entries)"
    )
    print(
        f"plain Celery results of the same four values: {r['celery_four_results_bytes']} B "
        f"({r['celery_one_result_bytes']} B each); a run / four results = "
        f"{r['ratio_to_four_results']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="order runs")
    cli(parser, run, report)


if __name__ == "__main__":
    main()
