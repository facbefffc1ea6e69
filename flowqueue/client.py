"""The Python API for starting and inspecting runs (``flowqueue.start_flow`` etc.).

Each function takes ``app=`` for a Celery app with flowqueue installed; the default is
``flowqueue.app``.
"""

from __future__ import annotations

from typing import Any

from flowqueue.errors import UnknownRun
from flowqueue.events import Event
from flowqueue.extension import Flowqueue, flowqueue_of
from flowqueue.flows import FlowInfo
from flowqueue.reducer import RunState, reduce


def _fq(app: Any | None) -> Flowqueue:
    if app is None:
        from flowqueue.celery_app import default_app

        app = default_app()
    return flowqueue_of(app)


def start_flow(flow: str, input: Any = None, *, app: Any | None = None) -> str:
    """Start a run of ``flow`` with ``input``; returns the run id.

    The input is checked (JSON, and each entry step's model) before anything is written.
    """
    return _fq(app).orchestrator.start_run(flow, input)


def read_events(run_id: str, *, after: str | None = None, app: Any | None = None) -> list[Event]:
    return _fq(app).store.read(run_id, after=after)


def get_run(run_id: str, *, app: Any | None = None) -> RunState:
    """The run's state, reduced from its whole log."""
    events = read_events(run_id, app=app)
    if not events:
        raise UnknownRun(f"no run {run_id!r}; `flowqueue runs FLOW` lists the runs of a flow.")
    return reduce(events)


def list_flows(*, app: Any | None = None) -> list[FlowInfo]:
    """Every flow with its steps and edges (from ``emits`` / ``subscribes``)."""
    return [graph.info() for graph in _fq(app).registry.flows.values()]
