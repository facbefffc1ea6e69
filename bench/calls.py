"""One script call's CPU in the caller: redis-py's ``EVALSHA`` against the store's client
(``PinnedScriptsRedis``: a connection pinned to the thread), in the same run.

    .venv/bin/python bench/calls.py [--n 4000] [--rounds 7] [--json]

Both call the same loaded script with 12 keys and 13 arguments (a claim's size) on a
throwaway redis-server; rounds interleave the two, and each figure is the median of the
rounds' CPU time per call (``time.process_time``, this process only). Prints the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import redis
from common import cli

from flowqueue.backend.redis._pinned import PinnedScriptsRedis
from flowqueue.backend.redis.embedded import EmbeddedRedis

NUMKEYS = 12
ARGS = [f"{{run}}:key:{i}" for i in range(NUMKEYS)] + [f"argument-{i}" for i in range(13)]


def cpu_us(call: Callable[[], Any], n: int) -> float:
    began = time.process_time()
    for _ in range(n):
        call()
    return (time.process_time() - began) / n * 1e6


def run(n: int, rounds: int) -> dict[str, Any]:
    with EmbeddedRedis() as server:
        plain = redis.Redis.from_url(server.url)
        pinned = PinnedScriptsRedis.from_url(server.url)
        sha = plain.script_load("return #KEYS + #ARGV")
        calls = {
            "redis_py": lambda: plain.evalsha(sha, NUMKEYS, *ARGS),
            "pinned": lambda: pinned.evalsha(sha, NUMKEYS, *ARGS),
        }
        for call in calls.values():
            cpu_us(call, 200)  # warm up: connections, caches
        per: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(rounds):
            for name, call in calls.items():
                per[name].append(cpu_us(call, n))
        plain.close()
        pinned.close()
    medians = {name: statistics.median(values) for name, values in per.items()}
    return {
        "n": n,
        "rounds": rounds,
        "redis_py_us": round(medians["redis_py"], 1),
        "pinned_us": round(medians["pinned"], 1),
        "ratio": round(medians["pinned"] / medians["redis_py"], 3),
        "redis_py_rounds_us": [round(v, 1) for v in per["redis_py"]],
        "pinned_rounds_us": [round(v, 1) for v in per["pinned"]],
    }


def report(r: dict[str, Any]) -> None:
    print(f"{r['rounds']} rounds of {r['n']} calls, CPU per call in the caller (median):")
    print(f"  redis-py EVALSHA           {r['redis_py_us']:>7} µs  {r['redis_py_rounds_us']}")
    print(f"  pinned connection EVALSHA  {r['pinned_us']:>7} µs  {r['pinned_rounds_us']}")
    print(f"  pinned / redis-py = {r['ratio']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4_000)
    parser.add_argument("--rounds", type=int, default=7)
    cli(parser, run, report)
