"""Score of the last ``mutmut run`` per module, from mutmut's own records in mutants/.

    python tools/mutation_score.py          # after `make mutate`

Killed: a test failed (or the mutant hung past its timeout). Survived: every test passed,
so no test notices that change; ``mutmut results`` lists them, ``mutmut show NAME`` shows
one. "No tests": no selected test calls that function at all.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

KILLED = {1, 3}
SURVIVED = {0}
TIMEOUT = {36, 24, -24, 152, 255}
NO_TESTS = {5, 33}


def kind(code: int | None) -> str:
    if code in KILLED:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in TIMEOUT:
        return "timeout"
    if code in NO_TESTS:
        return "no tests"
    return "not checked" if code is None else "other"


def main(root: Path = Path("mutants")) -> int:
    metas = sorted(root.glob("flowqueue/**/*.py.meta"))
    if not metas:
        print("no mutmut results in mutants/: run `make mutate` first", file=sys.stderr)
        return 1
    columns = ("killed", "timeout", "survived", "no tests", "not checked", "other")
    print(f"{'module':<28}" + "".join(f"{c:>12}" for c in columns) + f"{'score':>8}")
    total: Counter[str] = Counter()
    for meta in metas:
        codes = json.loads(meta.read_text())["exit_code_by_key"].values()
        counts = Counter(kind(code) for code in codes)
        if not counts:
            continue
        total += counts
        module = str(meta.relative_to(root))[: -len(".meta")]
        print(f"{module:<28}" + "".join(f"{counts[c]:>12}" for c in columns) + score(counts))
    print(f"{'all':<28}" + "".join(f"{total[c]:>12}" for c in columns) + score(total))
    return 0


def score(counts: Counter[str]) -> str:
    """Killed (timeouts included) out of the mutants a test could judge."""
    judged = counts["killed"] + counts["timeout"] + counts["survived"]
    return (
        f"{100 * (counts['killed'] + counts['timeout']) / judged:>7.0f}%" if judged else "       -"
    )


if __name__ == "__main__":
    sys.exit(main())
