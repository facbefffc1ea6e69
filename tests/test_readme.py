"""The README quotes the example flows verbatim; keep them in step."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_flow_example_is_quoted_from_workers():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Flows on Celery", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    source = (ROOT / "workers" / "orders.py").read_text()
    for chunk in block.group(1).strip().split("\n\n\n"):
        assert chunk in source, chunk
