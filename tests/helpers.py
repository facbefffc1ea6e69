"""Small builders shared by tests."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from flowqueue.model.events import NewEvent


def ev(kind: str = "log", run: str = "run-1", step: str | None = "s", **data: Any) -> NewEvent:
    return NewEvent(kind=kind, run_id=run, flow="flow-a", step=step, data=data)


def logs(run: str, n: int, start: int = 0) -> list[NewEvent]:
    return [ev("log", run, msg=f"line {i}", i=i) for i in range(start, start + n)]


def fake_step(name: str = "t.first", **options: Any) -> SimpleNamespace:
    """A step task's flow options, as ``@step`` sets them on its class, for
    ``StepDef.from_task`` (a real @step here would join every app of the session:
    Celery's shared tasks are process-wide). An entry step of flow ``f`` by default."""
    defaults: dict[str, Any] = dict(
        name=name, flow="f", entry=True, on_event=(), subscribes=(), emits=(),
        input_model=None, step_name=name.rsplit(".", 1)[-1], flow_retry=None, await_before=None,
        await_after=None, webhook=None, schedules=(), run=lambda ctx, input: None,
    )  # fmt: skip
    return SimpleNamespace(**(defaults | options))
