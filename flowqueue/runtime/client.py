"""The Python API for starting and inspecting runs (``flowqueue.start_flow`` etc.).

Each function takes ``app=`` for a Celery app with flowqueue installed; the default is
``flowqueue.app``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import redis
from pydantic import BaseModel

from flowqueue.authoring.flows import FlowInfo
from flowqueue.backend.checks import check_cursor
from flowqueue.backend.store import RunSummary, start_order
from flowqueue.errors import UnknownRun
from flowqueue.model.events import Event
from flowqueue.model.reducer import RunState, StepStatus, reduce, state_after
from flowqueue.model.validation import check_identifier, shown
from flowqueue.runtime._orchestrator import Signalled as Signalled  # signal() returns it
from flowqueue.runtime.app import default_app
from flowqueue.runtime.engine import Flowqueue, flowqueue_of
from flowqueue.runtime.workers import read_workers, step_queue, unserved

log = logging.getLogger(__name__)
_ENDED = (StepStatus.COMPLETED, StepStatus.FAILED, StepStatus.CANCELLED)


def _fq(app: Any | None) -> Flowqueue:
    return flowqueue_of(default_app() if app is None else app)


def start_flow(
    flow: str,
    input: Any = None,
    *,
    idempotency_key: str | None = None,
    app: Any | None = None,
) -> str:
    """Start a run of ``flow`` with ``input``; returns the run id.

    The input is checked (JSON, and each entry step's model) before anything is written.
    With ``idempotency_key``, a start of ``flow`` with the same key within
    ``FLOWQUEUE_IDEMPOTENCY_SECONDS`` returns the first one's run id and starts nothing.
    """
    return _fq(app).orchestrator.start_run(flow, input, idempotency_key=idempotency_key)


def signal(
    name: str,
    payload: Any = None,
    *,
    idempotency_key: str | None = None,
    app: Any | None = None,
) -> Signalled:
    """Send signal ``name`` (an event from outside any run); returns how many waits it woke
    (an int), with ``.signal_id`` and ``.runs`` (flow -> the run it started).

    It wakes every ``ctx.wait_for_event(name, match=...)`` (in any run) whose match the
    payload fits, and waits registered shortly after it still see it. It starts one run
    of each flow whose entry step declares ``on_event=name``, with the payload as input:
    a payload that does not fit their input models raises ``InvalidInput`` and writes
    nothing. With ``idempotency_key``, a signal with the same name and key within
    ``FLOWQUEUE_IDEMPOTENCY_SECONDS`` returns the first one's answer (``.replayed``) and
    writes nothing.
    """
    return _fq(app).orchestrator.signal(name, payload, idempotency_key=idempotency_key)


def resume(trigger_id: str, payload: Any = None, *, app: Any | None = None) -> str:
    """Resume the step waiting on ``trigger_id`` with ``payload``; returns its run id.

    Raises ``UnknownTrigger`` (unknown or expired id) or ``TriggerAlreadyUsed`` (resumed,
    timed out or cancelled already); nothing is written then.
    """
    return _fq(app).orchestrator.resume(trigger_id, payload)


def cancel(run_id: str, reason: str = "", *, app: Any | None = None) -> list[str]:
    """Cancel a run: appends flow.cancelled, clears its timers and waiters, revokes its
    queued steps; no step of it starts afterwards. Returns the steps that were queued.

    Raises ``InvalidIdentifier`` for an id no run can have, ``UnknownRun`` for a run
    with no events and ``RunAlreadyEnded`` if it had completed, failed or been cancelled.
    """
    first_event(run_id, app=app)
    return _fq(app).orchestrator.cancel(run_id, reason)


def rerun(run_id: str, *, app: Any | None = None) -> str:
    """Start a new run of ``run_id``'s flow with the same input; returns its id. The new
    run's flow.started has ``rerun_of`` (and ``trigger`` ``{"kind": "rerun", ...}``), the
    old run's log a ``flow.rerun`` event naming the new one."""
    first_event(run_id, app=app)
    return _fq(app).orchestrator.rerun(run_id)


def retry(run_id: str, *, app: Any | None = None) -> list[str]:
    """Run a failed run again under its id: each failed step (and each step its failure
    cancelled) gets one more attempt with its recorded input; returns those steps.
    Raises ``RunNotFailed`` for a run that is not failed (nothing is written)."""
    first_event(run_id, app=app)
    return _fq(app).orchestrator.retry(run_id)


def input_schema(flow: str, *, app: Any | None = None) -> dict[str, Any] | None:
    """The JSON Schema a run's input must fit: the entry step's input model (``allOf``
    when several entry steps declare one); None when none does (any JSON value)."""
    schemas = [s.model_json_schema() for s in _entry_models(_fq(app), flow)]
    return schemas[0] if len(schemas) == 1 else ({"allOf": schemas} if schemas else None)


def _entry_models(fq: Flowqueue, flow: str) -> list[type[BaseModel]]:
    entries = fq.flows.flow(flow).entry_steps
    return [s.input_model for s in entries if s.input_model is not None]


def read_events(run_id: str, *, after: str | None = None, app: Any | None = None) -> list[Event]:
    return _fq(app).store.read(run_id, after=after)


def get_run(run_id: str, *, at: str | None = None, app: Any | None = None) -> RunState:
    """The run's state, reduced from its whole log; with ``at`` (an event id), as it was
    just after that event (``InvalidEvent`` for an id that is not one or comes before the
    run's first event)."""
    events = read_events(run_id, app=app)
    if not events:
        raise no_run(run_id)
    if at is None:
        return reduce(events)
    check_cursor("at", at)
    return state_after(events, at)


def first_event(run_id: str, *, app: Any | None = None) -> Event:
    """The run's first event (``flow.started``): ``InvalidIdentifier`` for an id no run
    can have, ``UnknownRun`` for one with no events (the CLI's one gate for run ids)."""
    check_identifier("run id", run_id)
    found = _fq(app).store.read(run_id, limit=1)
    if not found:
        raise no_run(run_id)
    return found[0]


def no_run(run_id: str) -> UnknownRun:
    """The one error for a run id with no events, whatever was asked of it."""
    return UnknownRun(
        f"no run {shown(run_id)}; `flowqueue runs` lists recent runs.",
        run_id=run_id if isinstance(run_id, str) else None,
    )


def list_runs(
    flow: str | Sequence[str] | None = None,
    *,
    limit: int = 20,
    before: str | None = None,
    app: Any | None = None,
) -> list[RunSummary]:
    """Runs newest first: of ``flow`` (one, or several), or of every flow of the app (each
    flow's run index read for a page, merged by start time); ``before`` a run id pages on."""
    fq = _fq(app)
    if flow is None:
        flows = list(fq.flows.flows)
    else:
        flows = [fq.flows.flow(name).name for name in ([flow] if isinstance(flow, str) else flow)]
    if before is not None:
        first_event(before, app=app)  # an unknown run: the same answer as everywhere
    pages = [fq.store.list_runs(name, limit=limit, before=before) for name in flows]
    runs = (run for page in pages for run in page)
    return sorted(runs, key=start_order, reverse=True)[:limit]


def unserved_warning(
    flow: str, steps: Iterable[str] | None = None, *, app: Any | None = None
) -> str | None:
    """A one-line warning if no live worker (in the worker registry) serves one of
    ``steps`` of ``flow`` (default: all its steps), else None. None too where no worker
    is needed (eager, ``memory://``), for a flow this app does not know, or when the
    registry cannot be read: it is advice, never an error."""
    fq = _fq(app)
    queues = step_queues(fq, flow, steps)
    if not queues:
        return None
    try:
        workers = read_workers(fq.coordinator.client, fq.keys, fq.settings)
    except redis.RedisError as exc:
        log.debug("worker registry unreadable: %s", exc)
        return None
    return unserved(workers, flow, queues, str(fq.app.conf.task_default_queue))


def step_queues(fq: Flowqueue, flow: str, steps: Iterable[str] | None = None) -> dict[str, str]:
    """Step -> the queue Celery sends it to, for ``steps`` of ``flow`` (default: all,
    entry steps first); empty where no worker runs them (eager, ``memory://``, a flow
    this app does not know)."""
    graph = fq.flows.flows.get(flow)
    if graph is None or fq.app.conf.task_always_eager or fq.connections.memory:
        return {}
    names = set(graph.steps) if steps is None else set(steps)
    ordered = [*graph.entry_steps, *(s for s in graph.steps.values() if not s.entry)]
    return {s.name: step_queue(fq.app, s.task_name) for s in ordered if s.name in names}


def steps_still_to_run(state: RunState, *, app: Any | None = None) -> list[str]:
    """The steps a run may still need a worker for: none once it has ended, else every
    step of its flow not ended yet (queued, running, retrying, awaiting, not reached)."""
    graph = _fq(app).flows.flows.get(state.flow)
    if graph is None or state.terminal:
        return []
    ended = {name for name, step in state.steps.items() if step.status in _ENDED}
    return [name for name in graph.steps if name not in ended]


def list_flows(*, app: Any | None = None) -> list[FlowInfo]:
    """Every flow with its steps and edges (from ``emits`` / ``subscribes``)."""
    return [graph.info() for graph in _fq(app).flows.flows.values()]
