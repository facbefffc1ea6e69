"""Live delivery over SSE against raw Redis Pub/Sub, in the same run.

    .venv/bin/python bench/live.py [--clients 1,100,1000] [--api-workers 1,2] [--seconds 5]
                                   [--rate 10] [--saturation-clients 100] [--json]

One throwaway redis-server; for each API process count W of ``--api-workers``, one
``flowqueue api --workers W`` (uvicorn; W processes share the port, each with its own
Pub/Sub connection). For each client count C: C SSE clients (raw asyncio sockets in
this process, a regular expression per read) follow min(C, 10) runs, and every run gets
``--rate`` events a second, so each client receives ``--rate`` events a second; latency
is from just before ``append`` to the client reading the frame. The baseline, measured
just before in the same run: C raw redis-py Pub/Sub subscribers (one connection each)
on as many channels, PUBLISH at the same rate. Then saturation: ``--saturation-clients``
clients on one run while events are appended as fast as batches of 100 go; deliveries
per second of the W API processes.
Targets: SSE p99 <= 3 x raw Pub/Sub p99 at 100 clients, <= 50 ms at 1,000 clients;
saturation >= 100,000 deliveries/s with one API process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from common import ApiProcess, cli, pct, verdict

from flowqueue import Settings
from flowqueue.backend.redis.embedded import EmbeddedRedis
from flowqueue.backend.redis.store import AsyncRedisEventStore
from flowqueue.model.events import NewEvent
from flowqueue.model.ids import new_run_id

TARGETS_MS = {1000: 50.0}  # p99
TARGET_RATIOS = {100: 3.0}  # p99 / raw Pub/Sub p99
TARGET_SATURATION = 100_000  # deliveries/s, one API process
MARK = b'"t":'
SENT_AT = re.compile(rb'"t":([0-9.e+-]+)')


def sent_at(data: bytes) -> float:
    """The ``t`` the publisher put in the payload (no full JSON parse per event)."""
    start = data.index(MARK) + len(MARK)
    end = start
    while data[end : end + 1] not in (b",", b"}"):
        end += 1
    return float(data[start:end])


async def sse_client(port: int, path: str, latencies: list[float], ready: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    await writer.drain()
    rest = b""
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                return
            now = time.time()
            rest += data
            cut = rest.rfind(b"\n\n")  # whole frames only
            if cut < 0:
                continue
            frames, rest = rest[:cut], rest[cut + 2 :]
            if not ready.is_set() and b"retry:" in frames:
                ready.set()
            # flow.started carries no t; "ts" does not match
            latencies.extend((now - float(t)) * 1000 for t in SENT_AT.findall(frames))
    except (asyncio.CancelledError, ConnectionError):
        return
    finally:
        writer.close()


async def pubsub_client(
    url: str, channel: str, latencies: list[float], ready: asyncio.Event
) -> None:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(channel)
    ready.set()
    try:
        async for message in pubsub.listen():
            if message["type"] == "message":
                latencies.append((time.time() - sent_at(message["data"])) * 1000)
    except asyncio.CancelledError:
        return
    finally:
        await pubsub.aclose()
        await client.aclose()


async def publish_for(seconds: float, rate: float, send: Any, targets: list[str]) -> int:
    """``rate`` events a second to every target, paced, for ``seconds``."""
    sent, began = 0, time.monotonic()
    tick = 1.0 / rate
    while time.monotonic() - began < seconds:
        for i, target in enumerate(targets):
            await send(target, sent + i)
        sent += len(targets)
        next_at = began + (sent // len(targets)) * tick
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    return sent


async def measure_sse(
    store: AsyncRedisEventStore, port: int, clients: int, seconds: float, rate: float
) -> list[float]:
    runs = [new_run_id() for _ in range(min(clients, 10))]
    for run in runs:
        await store.append(NewEvent(kind="flow.started", run_id=run, flow="bench", data={}))
    latencies: list[float] = []
    readies = [asyncio.Event() for _ in range(clients)]
    tasks = [
        asyncio.create_task(
            sse_client(port, f"/api/_flows/bench/runs/{runs[i % len(runs)]}/stream"
                       f"?after=0-1", latencies, readies[i])
        )
        for i in range(clients)
    ]  # fmt: skip
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    await asyncio.sleep(0.5)

    async def send(run: str, i: int) -> None:
        data = {"msg": "tick", "i": i, "t": time.time()}
        await store.append(NewEvent(kind="log", run_id=run, flow="bench", step="s", data=data))

    await publish_for(seconds, rate, send, runs)
    await asyncio.sleep(1)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return latencies


async def measure_pubsub(url: str, clients: int, seconds: float, rate: float) -> list[float]:
    channels = [f"bench:{i}" for i in range(min(clients, 10))]
    latencies: list[float] = []
    readies = [asyncio.Event() for _ in range(clients)]
    tasks = [
        asyncio.create_task(pubsub_client(url, channels[i % len(channels)], latencies, readies[i]))
        for i in range(clients)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    publisher = aioredis.Redis.from_url(url)

    async def send(channel: str, i: int) -> None:
        await publisher.publish(channel, f'{{"i": {i}, "t": {time.time()}}}')

    await publish_for(seconds, rate, send, channels)
    await asyncio.sleep(1)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await publisher.aclose()
    return latencies


async def saturation(store: AsyncRedisEventStore, port: int, clients: int, seconds: float) -> float:
    run = new_run_id()
    await store.append(NewEvent(kind="flow.started", run_id=run, flow="bench", data={}))
    latencies: list[float] = []
    readies = [asyncio.Event() for _ in range(clients)]
    path = f"/api/_flows/bench/runs/{run}/stream?after=0-1"
    tasks = [
        asyncio.create_task(sse_client(port, path, latencies, readies[i])) for i in range(clients)
    ]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    began, i = time.monotonic(), 0
    while time.monotonic() - began < seconds:
        batch = [
            NewEvent(kind="log", run_id=run, flow="bench", step="s", data={"i": n, "t": 0})
            for n in range(i, i + 100)
        ]
        await store.append_many(batch)
        i += 100
        await asyncio.sleep(0)
    elapsed = time.monotonic() - began
    await asyncio.sleep(1)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return len(latencies) / (elapsed + 1)


def summary(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"n": 0, "p50": float("nan"), "p99": float("nan")}
    return {
        "n": len(samples),
        "p50": round(statistics.median(samples), 2),
        "p99": round(pct(samples, 0.99), 2),
    }


async def measure(
    url: str, port: int, counts: list[int], seconds: float, rate: float, saturation_clients: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows (raw Pub/Sub beside SSE for each client count) and saturation, on one API."""
    store = AsyncRedisEventStore(Settings(redis_url=url))
    rows = []
    for count in counts:
        raw = summary(await measure_pubsub(url, count, seconds, rate))
        sse = summary(await measure_sse(store, port, count, seconds, rate))
        rows.append({"clients": count, "pubsub": raw, "sse": sse})
    rate_ = await saturation(store, port, saturation_clients, seconds)
    await store.aclose()
    return rows, {"clients": saturation_clients, "deliveries_per_s": round(rate_)}


def run(
    clients: str, api_workers: str, seconds: float, rate: float, saturation_clients: int
) -> dict[str, Any]:
    counts = [int(c) for c in clients.split(",")]
    processes = [int(w) for w in api_workers.split(",")]
    out: dict[str, Any] = {"rate": rate, "seconds": seconds, "api_processes": processes}
    out["rows"], out["saturation_by_processes"] = [], []
    with EmbeddedRedis() as server, tempfile.TemporaryDirectory() as tmp:
        for workers in processes:
            env = {**os.environ, "FLOWQUEUE_REDIS_URL": server.url, "FLOWQUEUE_WORKERS": "workers"}
            api = ApiProcess(env, Path(tmp) / f"api{workers}.log", workers)
            try:
                rows, sat = asyncio.run(
                    measure(server.url, api.port, counts, seconds, rate, saturation_clients)
                )
            finally:
                api.stop()
            out["rows"] += [row | {"api_processes": workers} for row in rows]
            out["saturation_by_processes"].append(sat | {"api_processes": workers})
    # "saturation" as before (one entry): the fewest API processes measured
    out["saturation"] = out["saturation_by_processes"][0]
    return out


def report(r: dict[str, Any]) -> None:
    print(f"{r['rate']} events/s per client for {r['seconds']} s; latency append -> read, ms")
    print(
        "API processes | clients | raw Pub/Sub p50 / p99 | flowqueue SSE p50 / p99"
        " | p99 ratio | target"
    )
    for row in r["rows"]:
        raw, sse, n = row["pubsub"], row["sse"], row["clients"]
        ratio = round(sse["p99"] / raw["p99"], 2) if raw["p99"] else None
        ok = ""
        if n in TARGETS_MS:
            ok = f"p99 <= {TARGETS_MS[n]} ms: {verdict(sse['p99'] <= TARGETS_MS[n])}"
        elif n in TARGET_RATIOS and ratio is not None:
            ok = f"ratio <= {TARGET_RATIOS[n]}: {verdict(ratio <= TARGET_RATIOS[n])}"
        print(
            f"{row['api_processes']:>13} | {n:>7} | {raw['p50']:>8} / {raw['p99']:>8}"
            f" | {sse['p50']:>9} / {sse['p99']:>9} | {ratio} | {ok}  ({sse['n']} deliveries)"
        )
    for s in r["saturation_by_processes"]:
        ok = ""
        if s["api_processes"] == 1:
            target = TARGET_SATURATION
            ok = f" (>= {target}: {verdict(s['deliveries_per_s'] >= target)})"
        print(
            f"saturation, {s['api_processes']} API process(es): {s['clients']} clients on one"
            f" run: {s['deliveries_per_s']} deliveries/s{ok}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", default="1,100,1000")
    parser.add_argument("--api-workers", default="1,2", help="API process counts to measure")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--saturation-clients", type=int, default=100)
    cli(parser, run, report)


if __name__ == "__main__":
    main()
