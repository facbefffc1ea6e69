"""The Python API for starting and inspecting runs (``flowqueue.start_flow`` etc.).

Each function takes ``app=`` for a Celery app with flowqueue installed; the default is
``flowqueue.app``.
"""

from __future__ import annotations

from typing import Any

from flowqueue.authoring.flows import FlowInfo
from flowqueue.errors import UnknownRun
from flowqueue.model.events import Event
from flowqueue.model.reducer import RunState, reduce
from flowqueue.model.validation import shown
from flowqueue.runtime.app import default_app
from flowqueue.runtime.engine import Flowqueue, flowqueue_of


def _fq(app: Any | None) -> Flowqueue:
    return flowqueue_of(default_app() if app is None else app)


def start_flow(flow: str, input: Any = None, *, app: Any | None = None) -> str:
    """Start a run of ``flow`` with ``input``; returns the run id.

    The input is checked (JSON, and each entry step's model) before anything is written.
    """
    return _fq(app).orchestrator.start_run(flow, input)


def signal(name: str, payload: Any = None, *, app: Any | None = None) -> int:
    """Send signal ``name`` (an event from outside any run); returns how many waits it woke.

    It wakes every ``ctx.wait_for_event(name, match=...)`` (in any run) whose match the
    payload fits, and waits registered shortly after it still see it.
    """
    return _fq(app).orchestrator.signal(name, payload)[1]


def resume(trigger_id: str, payload: Any = None, *, app: Any | None = None) -> str:
    """Resume the step waiting on ``trigger_id`` with ``payload``; returns its run id.

    Raises ``UnknownTrigger`` (unknown or expired id) or ``TriggerAlreadyUsed`` (resumed,
    timed out or cancelled already); nothing is written then.
    """
    return _fq(app).orchestrator.resume(trigger_id, payload)


def cancel(run_id: str, reason: str = "", *, app: Any | None = None) -> list[str]:
    """Cancel a run: appends flow.cancelled, clears its timers and waiters, revokes its
    queued steps; no step of it starts afterwards. Returns the steps that were queued.

    Raises ``RunAlreadyEnded`` if it had completed, failed or been cancelled.
    """
    return _fq(app).orchestrator.cancel(run_id, reason)


def read_events(run_id: str, *, after: str | None = None, app: Any | None = None) -> list[Event]:
    return _fq(app).store.read(run_id, after=after)


def get_run(run_id: str, *, app: Any | None = None) -> RunState:
    """The run's state, reduced from its whole log."""
    events = read_events(run_id, app=app)
    if not events:
        raise no_run(run_id)
    return reduce(events)


def no_run(run_id: str) -> UnknownRun:
    """The error for a run id with no events (the CLI raises it too)."""
    return UnknownRun(
        f"no run {shown(run_id)}; `flowqueue runs FLOW` lists the runs of a flow.",
        run_id=run_id if isinstance(run_id, str) else None,
    )


def list_flows(*, app: Any | None = None) -> list[FlowInfo]:
    """Every flow with its steps and edges (from ``emits`` / ``subscribes``)."""
    return [graph.info() for graph in _fq(app).flows.flows.values()]
