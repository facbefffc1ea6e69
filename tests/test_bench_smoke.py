"""bench/chord.py and bench/soak.py run end to end at tiny sizes (each starts its own
redis-server, worker and, for the soak, API): the JSON they print has the shape
bench/plots.py reads, every join ran exactly once, and every soak run ended. No timing
is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
pytestmark = pytest.mark.e2e


def bench(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json"],
        cwd=BENCH.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_chord_counts_every_join_once_on_both_sides() -> None:
    r = bench("chord.py", "--m", "3", "--rounds", "2")
    assert r["exactly_once_ok"] is True
    for side in ("chord", "flow"):
        counts = r["exactly_once"][side]
        # the warm-up's 3 and two rounds of 3 each
        assert counts == {"expected": 9, "once": 9, "duplicated": 0, "missing": 0}
    assert [
        set(row) >= {"ratio", "chord_joins_per_s", "flow_joins_per_s"} for row in r["per_round"]
    ] == [True, True]
    assert r["command"] == ".venv/bin/python bench/chord.py --m 3 --rounds 2"


def test_soak_samples_both_processes_and_every_run_ends() -> None:
    r = bench(
        "soak.py",
        *("--minutes", "0.15", "--rate", "5", "--sse-clients", "2"),
        *("--sample-seconds", "1", "--bucket-seconds", "3", "--warmup-seconds", "1"),
    )
    assert r["runs_failed"] == 0
    assert r["runs_unfinished"] == 0
    assert r["runs_completed"] > 0
    assert r["windows"]
    assert all(w["completed"] > 0 for w in r["windows"])
    assert r["samples"]
    assert all(s["worker_rss_mib"] > 0 and s["api_rss_mib"] > 0 for s in r["samples"])
    assert r["sse"]["follows"] > 0
    assert r["sse"]["errors"] == 0
    assert sum(r["latency_ms"]["counts"]) == sum(w["completed"] for w in r["windows"])


def test_calls_compares_both_clients_on_the_same_script() -> None:
    r = bench("calls.py", "--n", "20", "--rounds", "2")
    assert len(r["redis_py_rounds_us"]) == len(r["pinned_rounds_us"]) == 2
    # the ratio of the unrounded medians: equal to that of the printed ones up to rounding
    assert r["ratio"] == pytest.approx(r["pinned_us"] / r["redis_py_us"], abs=0.01)


def test_delivery_runs_both_sides_through_the_tracer() -> None:
    r = bench("delivery.py", "--n", "20", "--rounds", "2")
    assert len(r["task_rounds_us"]) == len(r["run_rounds_us"]) == 2
    assert r["task_us"] > 0
    assert r["run_us"] > 0
    assert r["ratio"] == pytest.approx(r["task_us"] / r["run_us"], abs=0.01)


def test_archive_bench_copies_every_run_and_prints_both_sides() -> None:
    pytest.importorskip("psycopg")
    r = bench("archive.py", "--runs", "250", "--events", "4", "--rounds", "1")
    (row,) = r["per_round"]
    assert row["raw_runs_per_s"] > 0
    assert row["archiver_runs_per_s"] > 0
    assert r["ratio"] == row["ratio"]
