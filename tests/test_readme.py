"""The README quotes the example flows verbatim; keep them in step."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
_SOURCE = re.compile(r"`(workers/\w+\.py)`")


def quoted_examples() -> list[tuple[str, str]]:
    """(workers file, quoted code) for each Python block the README says comes from a
    file in workers/ (named right after the block, or else before it)."""
    readme = (ROOT / "README.md").read_text()
    found, previous_end = [], 0
    for block in _BLOCK.finditer(readme):
        before = _SOURCE.findall(readme[previous_end : block.start()])
        after = _SOURCE.findall(readme[block.end() : block.end() + 80])
        previous_end = block.end()
        if before or after:
            found.append((after[0] if after else before[-1], block.group(1)))
    return found


def test_readme_quotes_the_example_flows_verbatim():
    quoted = quoted_examples()
    assert {path for path, _ in quoted} >= {
        "workers/orders.py",
        "workers/flaky.py",
        "workers/reminders.py",
        "workers/approvals.py",
    }
    for path, code in quoted:
        source = (ROOT / path).read_text()
        for chunk in code.strip().split("\n\n\n"):
            assert chunk in source, f"README block not in {path}:\n{chunk}"
