"""Small builders shared by tests."""

from __future__ import annotations

from typing import Any

from flowqueue.model.events import NewEvent


def ev(kind: str = "log", run: str = "run-1", step: str | None = "s", **data: Any) -> NewEvent:
    return NewEvent(kind=kind, run_id=run, flow="flow-a", step=step, data=data)


def logs(run: str, n: int, start: int = 0) -> list[NewEvent]:
    return [ev("log", run, msg=f"line {i}", i=i) for i in range(start, start + n)]
