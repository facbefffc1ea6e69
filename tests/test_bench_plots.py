"""bench/plots.py turns each bench script's JSON into a PNG titled with the machine and
the command, and tolerates fields it does not know or that are missing."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib", reason="matplotlib is a dev dependency (bench/plots.py)")
PLOTS = Path(__file__).resolve().parent.parent / "bench" / "plots.py"
_spec = importlib.util.spec_from_file_location("bench_plots", PLOTS)
assert _spec is not None
assert _spec.loader is not None
plots = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plots)  # by path: bench/ on sys.path would shadow test modules

SAMPLES: dict[str, dict[str, Any]] = {
    "chord": {
        "command": ".venv/bin/python bench/chord.py --m 3 --rounds 2",
        "branches": 5,
        "per_round": [{"ratio": 0.9}, {"ratio": 1.1}],
        "celery_chord_joins_per_s": 40.0,
        "flowqueue_joins_per_s": 40.0,
        "ratio": 1.0,
        "exactly_once": {"chord": {"expected": 6, "once": 6}, "flow": {"expected": 6, "once": 6}},
    },
    "soak": {
        "flow": "example-flow",
        "rate": 50,
        "bucket_seconds": 60,
        "windows": [{"window": 1, "p50_ms": 20, "p99_ms": 40}, {"window": 2, "p50_ms": 21}],
        "samples": [{"t_s": 10, "worker_rss_mib": 200, "api_rss_mib": 70}, {"t_s": 20}],
        "rss": {"worker": {"flat": True}, "api": {}},
        "latency_ms": {"p50": 20, "edges": [0, 1, 2, 5], "counts": [0, 3, 1]},
    },
    # today's steps.py shape, plus per-round rows it may gain; no hop figures
    "steps": {
        "single_step_ratio": 0.8,
        "ten_step_ratio": 0.7,
        "rounds_data": [{"ten_step_ratio": 0.6}],
    },
    "live": {
        "rate": 10,
        "rows": [{"clients": 100, "pubsub": {"p50": 1, "p99": 2}, "sse": {"p99": 5}}],
    },
    "append": {"batch": 100, "xadd": {"events_per_s": 20000}, "append": {"events_per_s": 7000}},
    "run_bytes": {"by_key": {"(log)": 3000, ":meta": 200}, "shared_per_run": {"feed": 100}},
    "timers": {"ratio": 1.2, "lateness_ratio": "n/a", "n": 10},  # no plot of its own
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_result_becomes_a_png(tmp_path: Path, name: str) -> None:
    source = tmp_path / f"{name}.json"
    source.write_text(json.dumps(SAMPLES[name]))
    out = plots.render(source, tmp_path / f"{name}.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_figure_states_the_machine_and_the_command() -> None:
    fig = plots.figure("chord", SAMPLES["chord"])
    try:
        assert plots.machine() in fig.get_suptitle()
        assert "cores" in plots.machine()
        assert fig.get_supxlabel() == f"command: {SAMPLES['chord']['command']}"
        # a result without its command names the script make bench runs
        other = plots.figure("live", SAMPLES["live"])
        assert "bench/live.py" in other.get_supxlabel()
        plots.plt.close(other)
    finally:
        plots.plt.close(fig)


def test_a_result_that_is_not_an_object_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "steps.json"
    source.write_text("[1, 2]")
    with pytest.raises(ValueError, match="--json output"):
        plots.render(source, tmp_path / "steps.png")
