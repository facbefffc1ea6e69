"""Archive throughput: ended runs copied from Redis to Postgres, in runs/s, against a raw
copy of the same logs (pipelined XRANGE, then a psycopg ``COPY`` of the same rows)
measured in the same run.

    .venv/bin/python bench/archive.py [--runs 2000] [--events 12] [--rounds 3] [--json]

Each round writes ``--runs`` ended runs of ``--events`` events each (a flow.started, log
lines, a flow.completed) through the store with an archive, then times:
  (a) raw: read every log with one pipelined XRANGE per batch, and COPY the same rows into
      a table of the same shape, a transaction per batch of ``FLOWQUEUE_ARCHIVE_BATCH``
      (the floor: no decoding, no run rows, nothing kept in step in Redis);
  (b) the archiver: ``Archiver.archive_once`` until no run waits (take, save, archived.lua).
Needs the machine's PostgreSQL (FLOWQUEUE_TEST_POSTGRES, else postgresql://postgres@
127.0.0.1:5432/postgres): a database is made for the run and dropped after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid
from typing import Any

import psycopg
from common import cli

from flowqueue import Settings
from flowqueue.backend.redis.archiving import RedisArchiving
from flowqueue.backend.redis.embedded import EmbeddedRedis
from flowqueue.backend.redis.store import RedisEventStore
from flowqueue.model.events import NewEvent
from flowqueue.model.ids import new_run_id, parse_stream_id
from flowqueue.runtime._archiver import Archiver
from flowqueue.runtime._connections import Connections

ADMIN = os.environ.get("FLOWQUEUE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")

RAW_TABLE = """
CREATE TABLE IF NOT EXISTS raw_events (
    run_id text COLLATE "C" NOT NULL, ms numeric(20, 0) NOT NULL, seq numeric(20, 0) NOT NULL,
    body bytea, PRIMARY KEY (run_id, ms, seq))
"""


def whole_run(run: str, events: int) -> list[NewEvent]:
    def one(kind: str, step: str | None, **data: Any) -> NewEvent:
        return NewEvent(kind=kind, run_id=run, flow="bench", step=step, data=data)

    lines = [
        one("log", "s", level="info", message="payment accepted", i=i) for i in range(events - 2)
    ]
    return [one("flow.started", None, input={"order": 1}), *lines, one("flow.completed", None)]


def raw_copy(store: RedisEventStore, url: str, runs: list[str], batch: int) -> None:
    """What a user would write: the logs read raw, the same rows inserted raw."""
    with psycopg.connect(url) as conn:
        for start in range(0, len(runs), batch):
            chunk = runs[start : start + batch]
            pipe = store.client.pipeline(transaction=False)
            for run in chunk:
                pipe.xrange(store.commands.keys.run_stream(run))
            rows = [
                (run, *parse_stream_id(entry_id.decode()), fields[b"e"])
                for run, entries in zip(chunk, pipe.execute(), strict=True)
                for entry_id, fields in entries
            ]
            with (
                conn.transaction(),
                conn.cursor() as cur,
                cur.copy("COPY raw_events FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)


def run(runs: int, events: int, rounds: int) -> dict[str, Any]:
    name = f"flowqueue_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    url = f"{ADMIN.rsplit('/', 1)[0]}/{name}"
    server = EmbeddedRedis().start()
    per_round = []
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(RAW_TABLE.encode())
        for n in range(rounds):
            settings = Settings(redis_url=server.url, key_prefix=f"b{n}", archive_url=url)
            connections = Connections(settings)
            store = connections.store
            assert isinstance(store, RedisEventStore)
            ids = [new_run_id() for _ in range(runs)]
            for run_id in ids:
                store.append_many(whole_run(run_id, events))
            t0 = time.perf_counter()
            raw_copy(store, url, ids, settings.archive_batch)
            raw_s = time.perf_counter() - t0
            archiver, waiting = Archiver(connections), RedisArchiving(store)
            archiver.archive_once()  # the pool opened, the schema checked: not timed
            t0 = time.perf_counter()
            while waiting.waiting():
                archiver.archive_once()
            archive_s = time.perf_counter() - t0
            archiver.stop()
            connections.close()
            per_round.append(
                {
                    "raw_runs_per_s": round(runs / raw_s),
                    "archiver_runs_per_s": round((runs - settings.archive_batch) / archive_s),
                }
            )
            per_round[-1]["ratio"] = round(
                per_round[-1]["archiver_runs_per_s"] / per_round[-1]["raw_runs_per_s"], 2
            )
    finally:
        server.stop()
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
    return {
        "runs": runs,
        "events_per_run": events,
        "per_round": per_round,
        "archiver_runs_per_s": round(
            statistics.median(r["archiver_runs_per_s"] for r in per_round)
        ),
        "raw_runs_per_s": round(statistics.median(r["raw_runs_per_s"] for r in per_round)),
        "ratio": statistics.median(r["ratio"] for r in per_round),
    }


def report(result: dict[str, Any]) -> None:
    print(f"{result['runs']} ended runs of {result['events_per_run']} events, per round:")
    for r in result["per_round"]:
        print(f"  raw {r['raw_runs_per_s']:>6,} runs/s   archiver {r['archiver_runs_per_s']:>6,} "
              f"runs/s   ratio {r['ratio']}")  # fmt: skip
    print(
        f"median: archiver {result['archiver_runs_per_s']:,} runs/s, raw copy "
        f"{result['raw_runs_per_s']:,} runs/s, archiver / raw = {result['ratio']}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2_000)
    parser.add_argument("--events", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    cli(parser, run, report)


if __name__ == "__main__":
    main()
