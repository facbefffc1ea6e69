"""PNGs of the benchmarks' JSON results, for the README (matplotlib, no display).

    .venv/bin/python bench/plots.py [FILE.json | FOLDER ...]   (default: docs/bench)

Each ``<name>.json`` (a bench script's ``--json`` output) becomes ``<name>.png`` beside
it: the comparison's ratios, latencies or RSS over time, by the script that wrote it
(``steps``, ``live``, ``append``, ``run_bytes``, ``chord``, ``soak``; any other gets its
top-level ``*ratio*`` figures). Fields a plot does not find are left out, so older or
newer JSON still plots. Every PNG states the machine (cores, CPU model) and the command
that made the figures: the JSON's ``command``, else the script's run by ``make bench``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a display

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parent.parent
SIDES = ("#9e9e9e", "#1f77b4")  # the alternative (Celery, raw Redis) grey; flowqueue blue
TARGET_STYLE: dict[str, Any] = {"color": "#d62728", "linestyle": "--", "linewidth": 1}


def machine() -> str:
    """``<n> cores, <CPU model>`` of this machine (from /proc/cpuinfo where there is one)."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _nan(value: Any) -> float:
    """A gap in a line plot for a missing figure."""
    number = _num(value)
    return float("nan") if number is None else number


def _bars(ax: Axes, labels: list[str], values: list[float], colors: list[str]) -> None:
    bars = ax.bar(labels, values, color=colors)
    ax.bar_label(
        bars, labels=[f"{v:,.0f}" if v >= 1000 else f"{v:.3g}" for v in values], fontsize=8
    )


def _target(ax: Axes, value: float, label: str) -> None:
    ax.axhline(value, **TARGET_STYLE, label=label)
    ax.legend(fontsize=8)


def _ratio_panel(ax: Axes, ratios: dict[str, float], targets: dict[str, float]) -> None:
    labels = list(ratios)
    _bars(ax, labels, [ratios[k] for k in labels], [SIDES[1]] * len(labels))
    ax.axhline(1.0, color="black", linewidth=0.8)
    for label, target in targets.items():
        if label in ratios:
            i = labels.index(label)
            ax.plot([i - 0.4, i + 0.4], [target, target], **TARGET_STYLE)
    ax.set_ylabel("flowqueue / alternative (higher is better)")
    ax.set_title("ratios, same run (dashed: target)", fontsize=9)


def _per_round(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-round rows under whichever key a script uses for them."""
    for key in ("per_round", "rounds_data", "round_results"):
        rows = data.get(key)
        if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
            return rows
    return []


def plot_steps(fig: Figure, data: dict[str, Any]) -> None:
    left, right = fig.subplots(1, 2)
    pairs = [("single step", "single_step_ratio", 0.90), ("ten steps", "ten_step_ratio", 0.85)]
    ratios = {name: v for name, key, _t in pairs if (v := _num(data.get(key))) is not None}
    _ratio_panel(left, ratios, {name: target for name, _k, target in pairs})
    for row in _per_round(data):  # each round's ratio as a dot, where the JSON has them
        for name, key, _t in pairs:
            if name in ratios and (v := _num(row.get(key))) is not None:
                left.plot(list(ratios).index(name), v, "k.", alpha=0.6)
    for name, key, _t in pairs:  # steps.py lists every round's ratio beside the median
        rounds = data.get(f"{key}s")
        if name in ratios and isinstance(rounds, list):
            dots = [v for r in rounds if (v := _num(r)) is not None]
            left.plot([list(ratios).index(name)] * len(dots), dots, "k.", alpha=0.6)
    # flowqueue's hop beside a Celery chain's, where the JSON has it
    sides = [("flowqueue", "hop", SIDES[1]), ("Celery chain", "celery_hop", SIDES[0])]
    shown = [
        (f"{who} {q}", v, color)
        for who, key, color in sides
        for q in ("p50", "p99")
        if (v := _num(data.get(f"{key}_{q}_ms"))) is not None
    ]
    _bars(right, [k for k, _, _ in shown], [v for _, v, _ in shown], [c for _, _, c in shown])
    right.axhline(3.0, **TARGET_STYLE, label="p50 target 3 ms")
    right.axhline(8.0, color="#ff7f0e", linestyle=":", linewidth=1, label="p99 target 8 ms")
    right.legend(fontsize=8)
    right.set_ylabel("ms")
    right.set_title("latency to the next step (Celery: to the next task), idle worker", fontsize=9)


def plot_live(fig: Figure, data: dict[str, Any]) -> None:
    rows = [r for r in data.get("rows", []) if isinstance(r, dict)]
    left, right = fig.subplots(1, 2)
    width = 0.2
    for offset, (side, color) in enumerate(zip(("pubsub", "sse"), SIDES, strict=True)):
        for shift, q in enumerate(("p50", "p99")):
            x = [i + (2 * offset + shift - 1.5) * width for i in range(len(rows))]
            y = [_num(r.get(side, {}).get(q)) or 0.0 for r in rows]
            label = {"pubsub": "raw Pub/Sub", "sse": "flowqueue SSE"}[side] + f" {q}"
            left.bar(x, y, width, color=color, alpha=0.55 if q == "p50" else 1.0, label=label)
    left.set_xticks(range(len(rows)), [f"{r.get('clients')} clients" for r in rows])
    left.set_yscale("log")
    left.set_ylabel("append -> client read, ms (log)")
    left.set_title(f"latency at {data.get('rate', '?')} events/s per client", fontsize=9)
    left.legend(fontsize=7)
    ratios = {}
    for r in rows:
        raw, sse = _num(r.get("pubsub", {}).get("p99")), _num(r.get("sse", {}).get("p99"))
        if raw and sse is not None:
            ratios[f"{r.get('clients')}"] = sse / raw
    _bars(right, list(ratios), list(ratios.values()), [SIDES[1]] * len(ratios))
    right.set_xlabel("clients")
    right.set_ylabel("SSE p99 / raw Pub/Sub p99 (lower is better)")
    if "100" in ratios:
        _target(right, 3.0, "target at 100 clients: <= 3x")
    saturation = data.get("saturation")
    if isinstance(saturation, dict):
        right.set_title(
            f"saturation: {saturation.get('deliveries_per_s', '?'):,} deliveries/s, "
            f"{saturation.get('clients', '?')} clients",
            fontsize=9,
        )


def plot_append(fig: Figure, data: dict[str, Any]) -> None:
    left, right = fig.subplots(1, 2)
    batch = data.get("batch", "?")
    singles = [("raw XADD", "xadd", SIDES[0]), ("store.append", "append", SIDES[1])]
    batches = [
        (f"pipelined XADD x{batch}", "xadd_pipelined", SIDES[0]),
        (f"append_many x{batch}", "append_many", SIDES[1]),
    ]
    for ax, group, unit in ((left, singles, "one event"), (right, batches, "batches")):
        shown = [(name, data[key], color) for name, key, color in group if key in data]
        values = [float(s.get("events_per_s", 0)) for _, s, _ in shown]
        _bars(ax, [name for name, _, _ in shown], values, [color for *_, color in shown])
        ax.set_ylabel("events/s")
        ax.set_title(f"{unit} per call", fontsize=9)
    if _num(data.get("append_over_xadd_p50")) is not None:
        left.set_title(
            f"one event per call; append p50 = {data['append_over_xadd_p50']}x XADD's", fontsize=9
        )
    if _num(data.get("append_many_over_xadd_pipelined")) is not None:
        right.set_title(
            f"batches; append_many = {data['append_many_over_xadd_pipelined']}x pipelined XADD",
            fontsize=9,
        )


def plot_run_bytes(fig: Figure, data: dict[str, Any]) -> None:
    ax = fig.subplots()
    by_key = {k: float(v) for k, v in data.get("by_key", {}).items() if _num(v) is not None}
    shared = {f"shared: {k}": float(v) for k, v in data.get("shared_per_run", {}).items()}
    bottom = 0.0
    for i, (name, size) in enumerate({**by_key, **shared}.items()):
        ax.bar("flowqueue run", size, bottom=bottom, label=name, color=plt.cm.tab20(i % 20))
        bottom += size
    if (celery := _num(data.get("celery_four_results_bytes"))) is not None:
        ax.bar("4 Celery results", celery, color=SIDES[0])
    _target(ax, 4096, "target <= 4 KB per run")
    ax.set_ylabel("bytes in Redis (MEMORY USAGE), mean per run")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(
        f"'order' run: mean {data.get('mean_bytes', '?')} B, max {data.get('max_bytes', '?')} B",
        fontsize=9,
    )


def plot_chord(fig: Figure, data: dict[str, Any]) -> None:
    left, right = fig.subplots(1, 2)
    labels = ["Celery chord", "flowqueue join"]
    keys = ["celery_chord_joins_per_s", "flowqueue_joins_per_s"]
    values = [_num(data.get(k)) or 0.0 for k in keys]
    _bars(left, labels, values, list(SIDES))
    left.set_ylabel("joins/s (median of rounds)")
    once = data.get("exactly_once", {})
    exact = ", ".join(
        f"{side}: {s.get('once')}/{s.get('expected')}"
        for side, s in once.items()
        if isinstance(s, dict)
    )
    left.set_title(f"{data.get('branches', 5)} branches + join; ran once: {exact}", fontsize=9)
    rounds = _per_round(data)
    ratios = [v for r in rounds if (v := _num(r.get("ratio"))) is not None]
    right.plot(range(1, len(ratios) + 1), ratios, "o-", color=SIDES[1], label="per round")
    right.set_xticks(range(1, len(ratios) + 1))  # rounds are whole
    if (median := _num(data.get("ratio"))) is not None:
        right.axhline(median, color=SIDES[1], linewidth=0.8, label=f"ratio of medians {median}")
    _target(right, 1.0, "target >= 1.0")
    right.set_xlabel("round")
    right.set_ylabel("flowqueue / chord throughput")


def plot_soak(fig: Figure, data: dict[str, Any]) -> None:
    grid = fig.add_gridspec(2, 2, width_ratios=(2, 1))
    top = fig.add_subplot(grid[0, 0])
    bottom = fig.add_subplot(grid[1, 0], sharex=top)
    _latency_histogram(fig.add_subplot(grid[:, 1]), data.get("latency_ms") or {})
    samples = [s for s in data.get("samples", []) if isinstance(s, dict)]
    minutes = [float(s.get("t_s", 0)) / 60 for s in samples]
    for key, label in (
        ("worker_rss_mib", "worker (main + pool)"),
        ("api_rss_mib", "API"),
        ("redis_used_mib", "Redis used_memory"),
    ):
        if samples and key in samples[0]:
            top.plot(minutes, [_nan(s.get(key)) for s in samples], label=label)
    top.set_ylabel("MiB")
    top.legend(fontsize=8)
    verdicts = [
        f"{k} {'flat' if v.get('flat') else 'NOT flat'}"
        for k, v in data.get("rss", {}).items()
        if v
    ]
    top.set_title("RSS over time: " + ", ".join(verdicts), fontsize=9)
    bucket = float(data.get("bucket_seconds", 60)) / 60
    windows = [w for w in data.get("windows", []) if isinstance(w, dict)]
    ends = [float(w.get("window", i + 1)) * bucket for i, w in enumerate(windows)]
    for key, style in (("p50_ms", "o-"), ("p99_ms", "s-")):
        values = [_nan(w.get(key)) for w in windows]
        bottom.plot(ends, values, style, label=key.replace("_ms", ""))
    if (first := _num(data.get("p99_first_ms"))) is not None:
        bottom.axhline(first * 1.2, **TARGET_STYLE, label="1.2x window 1's p99")
    bottom.set_ylabel("run latency, ms (started -> completed)")
    bottom.set_xlabel("minutes")
    bottom.legend(fontsize=8)
    kept = data.get("kept_up")
    kept_up = "" if not isinstance(kept, bool) else ", kept up" if kept else ", did NOT keep up"
    bottom.set_title(
        f"'{data.get('flow', '?')}' at {data.get('rate', '?')} runs/s "
        f"(achieved {data.get('achieved_rate', '?')}{kept_up})",
        fontsize=9,
    )


def _latency_histogram(ax: Axes, dist: dict[str, Any]) -> None:
    edges, counts = dist.get("edges", []), dist.get("counts", [])
    if len(edges) != len(counts) + 1:
        ax.set_axis_off()
        return
    labels = [f"{lo:g}-{hi:g}" for lo, hi in itertools.pairwise(edges)]
    ax.barh(labels, counts, color=SIDES[1])
    ax.set_xscale("symlog")
    ax.set_xlabel("runs (symlog)")
    ax.set_ylabel("run latency, ms")
    quantiles = ", ".join(f"{k} {dist[k]}" for k in ("p50", "p99", "p99.9", "max") if k in dist)
    ax.set_title(f"distribution, all windows\n{quantiles} ms", fontsize=9)


def plot_generic(fig: Figure, data: dict[str, Any]) -> None:
    ratios = {k: float(v) for k, v in data.items() if "ratio" in k and _num(v) is not None}
    _ratio_panel(fig.subplots(), ratios, {})


PLOTTERS: dict[str, Callable[[Figure, dict[str, Any]], None]] = {
    "steps": plot_steps,
    "live": plot_live,
    "append": plot_append,
    "run_bytes": plot_run_bytes,
    "chord": plot_chord,
    "soak": plot_soak,
}
TITLES = {
    "steps": "flowqueue runs vs plain Celery tasks and chains",
    "live": "SSE live delivery vs raw Redis Pub/Sub",
    "append": "appending events vs raw XADD",
    "run_bytes": "bytes in Redis per run of 'order' vs Celery results",
    "chord": "5-branch fan-out/join vs a Celery chord",
    "soak": "steady-state soak: RSS and run latency over time",
}


def figure(name: str, data: dict[str, Any]) -> Figure:
    """The figure of bench ``name``'s result ``data``, titled with the machine and command."""
    fig = plt.figure(figsize=(11, 6.5 if name == "soak" else 5), layout="constrained")
    PLOTTERS.get(name, plot_generic)(fig, data)
    command = data.get("command") or f".venv/bin/python bench/{name}.py (make bench)"
    fig.suptitle(f"{TITLES.get(name, name)}\n{machine()}", fontsize=11)
    fig.supxlabel(f"command: {command}", fontsize=8, color="#555555")
    return fig


def render(path: Path, out: Path) -> Path:
    """``path``'s JSON (named after its bench script) as a PNG at ``out``."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object; pass a bench script's --json output")
    fig = figure(path.stem, data)
    try:
        fig.savefig(out, dpi=110)
    finally:
        plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "paths", nargs="*", type=Path, default=[ROOT / "docs" / "bench"],
        help="JSON results, or folders of them (default: docs/bench)",
    )  # fmt: skip
    args = parser.parse_args()
    if missing := [str(p) for p in args.paths if not p.exists()]:
        sys.exit(f"{', '.join(missing)}: no such file or folder; pass bench JSON results")
    files = [f for p in args.paths for f in (sorted(p.glob("*.json")) if p.is_dir() else [p])]
    if not files:
        sys.exit(
            f"no JSON results in {', '.join(map(str, args.paths))}; write one with a bench "
            "script's --json-out docs/bench/<script>.json"
        )
    for path in files:
        print(render(path, path.with_suffix(".png")))


if __name__ == "__main__":
    main()
