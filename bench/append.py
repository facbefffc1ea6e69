"""Append cost against a raw redis-py XADD, measured in the same run on a throwaway Redis.

    .venv/bin/python bench/append.py [--n 5000] [--rounds 5] [--batch 100] [--json]

Rounds interleave the four measurements so drift on a shared machine hits them alike:
  (a) raw ``client.xadd(stream, {"e": body})`` with the same encoded body flowqueue stores;
  (b) ``store.append(NewEvent(...))`` including building and validating the event;
  (c) ``store.append_many`` in batches of ``--batch`` events (one script call each);
  (d) raw XADDs of that body pipelined in batches of ``--batch`` (one round trip each),
      what a user would write instead of (c).
Targets: append p50 <= 1.5x XADD p50; append_many >= 50,000 events/s. (c)/(d) is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import redis
from common import cli, pct, verdict

from flowqueue import Settings
from flowqueue.backend.redis.embedded import EmbeddedRedis
from flowqueue.backend.redis.store import RedisEventStore
from flowqueue.model.events import NewEvent, encode_body
from flowqueue.model.ids import new_run_id

APPEND_RATIO_TARGET = 1.5
APPEND_MANY_TARGET = 50_000


def make_event(run_id: str, i: int) -> NewEvent:
    return NewEvent(
        kind="log",
        run_id=run_id,
        flow="bench",
        step="step",
        data={"level": "info", "message": "payment accepted", "i": i},
    )


def time_each(n: int, op: Callable[[int], object]) -> list[float]:
    """Latency of each of ``n`` calls, in microseconds."""
    samples = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        op(i)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    return samples


def summary(samples: list[float], events_per_sample: int = 1) -> dict[str, float]:
    total_s = sum(samples) / 1e6
    return {
        "p50_us": round(statistics.median(samples), 1),
        "p99_us": round(pct(samples, 0.99), 1),
        "events_per_s": round(len(samples) * events_per_sample / total_s),
    }


def xadd_pipelined(raw: redis.Redis, stream: str, body: bytes, batch: int) -> None:
    pipe = raw.pipeline(transaction=False)
    for _ in range(batch):
        pipe.xadd(stream, {"e": body})
    pipe.execute()


def measure_round(
    raw: redis.Redis, store: RedisEventStore, body: bytes, n: int, batch: int, raw_stream: str
) -> tuple[list[float], list[float], list[float], list[float]]:
    run_id, batch_run = new_run_id(), new_run_id()
    batches = max(1, n // batch)
    xadd = time_each(n, lambda _i: raw.xadd(raw_stream, {"e": body}))
    single = time_each(n, lambda i: store.append(make_event(run_id, i)))
    many = time_each(
        batches,
        lambda j: store.append_many([make_event(batch_run, j * batch + k) for k in range(batch)]),
    )
    piped = time_each(batches, lambda _j: xadd_pipelined(raw, f"{raw_stream}:p", body, batch))
    return xadd, single, many, piped


def run(n: int, rounds: int, batch: int) -> dict[str, object]:
    with EmbeddedRedis() as server:
        settings = Settings(redis_url=server.url, key_prefix="bench")
        store = RedisEventStore(settings)
        raw = redis.Redis.from_url(server.url)
        body = encode_body(make_event(new_run_id(), 0), settings.max_payload_bytes)
        xadd_samples: list[float] = []
        append_samples: list[float] = []
        batch_samples: list[float] = []
        piped_samples: list[float] = []
        for round_no in range(rounds + 1):  # round 0 warms up connections, scripts, caches
            xadd, single, many, piped = measure_round(
                raw, store, body, n, batch, f"bench:raw:{round_no}"
            )
            if round_no:
                xadd_samples += xadd
                append_samples += single
                batch_samples += many
                piped_samples += piped
        raw.close()
        store.close()
    xadd_s = summary(xadd_samples)
    append_s = summary(append_samples)
    many_s = summary(batch_samples, batch)
    piped_s = summary(piped_samples, batch)
    ratio = append_s["p50_us"] / xadd_s["p50_us"]
    return {
        "command": f".venv/bin/python bench/append.py --n {n} --rounds {rounds} --batch {batch}",
        "n": n,
        "rounds": rounds,
        "batch": batch,
        "xadd": xadd_s,
        "append": append_s,
        "append_many": many_s,
        "xadd_pipelined": piped_s,
        "append_over_xadd_p50": round(ratio, 2),
        "append_many_over_xadd_pipelined": round(
            many_s["events_per_s"] / piped_s["events_per_s"], 2
        ),
        "append_ok": ratio <= APPEND_RATIO_TARGET,
        "append_many_ok": many_s["events_per_s"] >= APPEND_MANY_TARGET,
    }


def report(result: dict[str, object]) -> None:
    rows = [
        ("raw XADD (redis-py)", result["xadd"]),
        ("store.append", result["append"]),
        (f"store.append_many x{result['batch']}", result["append_many"]),
        (f"raw XADD pipelined x{result['batch']}", result["xadd_pipelined"]),
    ]
    print("(p50 / p99 per call: one event, or one batch for the x-batch rows)")
    print(f"{'operation':<26} {'p50 µs':>9} {'p99 µs':>9} {'events/s':>10}")
    for name, s in rows:
        assert isinstance(s, dict)
        print(f"{name:<26} {s['p50_us']:>9} {s['p99_us']:>9} {s['events_per_s']:>10,}")
    print(
        f"append p50 / XADD p50 = {result['append_over_xadd_p50']}x "
        f"(target <= {APPEND_RATIO_TARGET}x): {verdict(bool(result['append_ok']))}"
    )
    many = result["append_many"]
    assert isinstance(many, dict)
    print(
        f"append_many = {many['events_per_s']:,} events/s "
        f"(target >= {APPEND_MANY_TARGET:,}): {verdict(bool(result['append_many_ok']))}"
    )
    print(f"append_many / pipelined XADD, events/s = {result['append_many_over_xadd_pipelined']}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="operations per round and kind")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (plus warm-up)")
    parser.add_argument("--batch", type=int, default=100, help="events per append_many call")
    cli(parser, run, report)


if __name__ == "__main__":
    main()
