"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


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
