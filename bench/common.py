"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
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
    """Parse options, run, and print the report (or JSON with --json)."""
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    options = vars(parser.parse_args())
    as_json = options.pop("json")
    result = run(**options)
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        report(result)
