"""Flows and runs: list, start, read, stream, cancel; trigger resume."""

from __future__ import annotations

from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from flowqueue.api.auth import require_token
from flowqueue.api.body import ANY_JSON_BODY, json_body, request_body
from flowqueue.api.context import ApiContext, context_of
from flowqueue.api.models import (
    Cancelled,
    CloudEventPage,
    EventPage,
    FlowDetail,
    FlowOut,
    Rerun,
    Resumed,
    Retried,
    RunPage,
    Started,
)
from flowqueue.api.problems import ApiError, problem_responses
from flowqueue.api.sse import run_stream
from flowqueue.backend.checks import check_cursor
from flowqueue.backend.store import RunSummary
from flowqueue.errors import UnknownRun
from flowqueue.model.cloudevents import Format, to_cloudevent
from flowqueue.model.events import NOTE_KINDS, TERMINAL_KINDS, Event
from flowqueue.model.ids import STREAM_ID_PATTERN, parse_stream_id
from flowqueue.model.reducer import RunState, RunStatus, reduce, state_after
from flowqueue.model.validation import IDENT_PATTERN
from flowqueue.runtime.client import input_schema, step_queues
from flowqueue.runtime.workers import read_workers_async, unserved

router = APIRouter(dependencies=[Depends(require_token)])
streams = APIRouter(dependencies=[Depends(require_token)])  # EventSource: cookie
public = APIRouter()  # no token: a trigger id authorises its own resume
Flow = Annotated[str, Path(description="Flow name.", max_length=128)]
RunId = Annotated[str, Path(description="Run id.", max_length=128)]
SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Server-sent events", "content": {"text/event-stream": {}}},
    204: {"description": "The run has ended and nothing follows Last-Event-ID."},
}
MAX_PAGE = 10_000
STATUS_SCAN_PAGES = 20  # pages looked through to fill one ?status= page
# Cursors are stream ids, as events carry them (each half within 64 bits).
After = Annotated[str | None, Query(pattern=STREAM_ID_PATTERN, description="Resume after this id.")]
LastEventId = Annotated[str | None, Header(pattern=STREAM_ID_PATTERN)]
EventFormat = Annotated[
    Format,
    Query(
        alias="format",
        description="flowqueue: each event as flowqueue writes it; cloudevents: each as a "
        "CloudEvents 1.0 JSON envelope (type flowqueue.<kind>, source /flows/<flow>/runs/<run>).",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        pattern=IDENT_PATTERN,
        description="A start of this flow with the same key within "
        "FLOWQUEUE_IDEMPOTENCY_SECONDS returns the first one's run and starts nothing.",
    ),
]


async def _run_events(ctx: ApiContext, flow: str, run_id: str, limit: int | None) -> list[Event]:
    events = await ctx.store.read(run_id, limit=limit)
    if not events or events[0].flow != flow:
        raise UnknownRun(
            f"flow {flow!r} has no run {run_id!r}; GET /api/_flows/{flow}/runs lists its runs."
        )
    return events


@router.get("/api/_flows", response_model=list[FlowOut], responses=problem_responses(401))
async def flows(request: Request) -> list[FlowOut]:
    """Every flow with its steps, edges (from emits / subscribes) and live counters."""
    ctx = context_of(request)
    return [
        FlowOut(**graph.info().model_dump(), stats=await ctx.store.flow_stats(graph.name))
        for graph in ctx.fq.flows.flows.values()
    ]


@router.get("/api/_flows/{flow}", response_model=FlowDetail, responses=problem_responses(401, 404))
async def flow_detail(request: Request, flow: Flow) -> FlowDetail:
    """The flow with its steps, edges, live counters and the JSON Schema of its input."""
    ctx = context_of(request)
    info = ctx.fq.flows.flow(flow).info()  # UnknownFlow: 404
    stats = await ctx.store.flow_stats(flow)
    return FlowDetail(
        **info.model_dump(), stats=stats, input_schema=input_schema(flow, app=ctx.fq.app)
    )


@router.get(
    "/api/_flows/{flow}/runs", response_model=RunPage, responses=problem_responses(401, 404, 422)
)
async def runs(
    request: Request,
    flow: Flow,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[str | None, Query(max_length=128, description="Run id cursor.")] = None,
    status: Annotated[RunStatus | None, Query()] = None,
) -> RunPage:
    """The flow's runs, newest first; ``next_before`` pages to older ones."""
    ctx = context_of(request)
    ctx.fq.flows.flow(flow)  # UnknownFlow: 404
    found: list[RunSummary] = []
    cursor: str | None = before
    for _ in range(STATUS_SCAN_PAGES):
        page = await ctx.store.list_runs(flow, limit=limit, before=cursor)
        for summary in page:
            if status is None or summary.status == status.value:
                found.append(summary)
                if len(found) == limit:
                    return RunPage(runs=found, next_before=summary.run_id)
        if len(page) < limit:
            return RunPage(runs=found, next_before=None)
        cursor = page[-1].run_id
    return RunPage(runs=found, next_before=cursor)  # scanned enough; go on from here


@router.post(
    "/api/_flows/{flow}/start",
    response_model=Started,
    status_code=201,
    responses=problem_responses(401, 404, 408, 413, 422),
    openapi_extra=ANY_JSON_BODY,
)
async def start(request: Request, flow: Flow, idempotency_key: IdempotencyKey = None) -> Started:
    """Start a run with the JSON body as its input (checked against the entry step's
    model before anything is written). With an ``Idempotency-Key`` header, a start of the
    flow with the same key within FLOWQUEUE_IDEMPOTENCY_SECONDS answers with the first
    one's run and starts nothing. ``warnings`` says when no live worker serves one of the
    flow's steps (the run waits for one)."""
    ctx = context_of(request)
    ctx.fq.flows.flow(flow)  # UnknownFlow: 404
    value = await json_body(request)
    run_id = await run_in_threadpool(
        ctx.fq.orchestrator.start_run, flow, value, idempotency_key=idempotency_key
    )
    warning = await _unserved(ctx, flow)
    return Started(flow=flow, run_id=run_id, warnings=[warning] if warning else [])


async def _unserved(ctx: ApiContext, flow: str) -> str | None:
    """The warning when no live worker serves a step of ``flow`` (``unserved_warning``
    read asynchronously); advice only, so a registry that cannot be read gives none."""
    queues = step_queues(ctx.fq, flow)
    if not queues:
        return None
    try:
        workers = await read_workers_async(ctx.redis, ctx.fq.keys, ctx.settings)
    except redis.RedisError:
        return None
    return unserved(workers, flow, queues, str(ctx.fq.app.conf.task_default_queue))


@router.get(
    "/api/_flows/{flow}/runs/{run_id}",
    response_model=RunState,
    responses=problem_responses(401, 404, 422),
)
async def run_state(
    request: Request,
    flow: Flow,
    run_id: RunId,
    at: Annotated[
        str | None,
        Query(
            pattern=STREAM_ID_PATTERN,
            description="Time travel: the state just after this event id (the log up to it).",
        ),
    ] = None,
) -> RunState:
    """The run's state, reduced from its whole log (or, with ``at``, from the log up to and
    including that event: what the run looked like then)."""
    check_cursor("at", at)
    events = await _run_events(context_of(request), flow, run_id, None)
    return reduce(events) if at is None else state_after(events, at)  # InvalidEvent: 422


@router.get(
    "/api/_flows/{flow}/runs/{run_id}/events",
    response_model=EventPage | CloudEventPage,
    responses=problem_responses(401, 404, 422),
)
async def run_events(
    request: Request,
    flow: Flow,
    run_id: RunId,
    after: After = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
    event_format: EventFormat = "flowqueue",
) -> EventPage | Response:
    """A page of the run's log after ``after``."""
    ctx = context_of(request)
    check_cursor("after", after)
    await _run_events(ctx, flow, run_id, 1)
    events = await ctx.store.read(run_id, after=after, limit=limit)
    next_after = events[-1].id if len(events) == limit else None
    if event_format == "cloudevents":  # as is: not validated again as an EventPage first
        page = CloudEventPage(events=[to_cloudevent(e) for e in events], next_after=next_after)
        return Response(page.model_dump_json(), media_type="application/json")
    return EventPage(events=events, next_after=next_after)


@streams.get(
    "/api/_flows/{flow}/runs/{run_id}/stream",
    response_class=Response,
    responses={**SSE_RESPONSES, **problem_responses(401, 404, 422)},
)
async def stream(
    request: Request,
    flow: Flow,
    run_id: RunId,
    after: After = None,
    keep_open: Annotated[bool, Query(description="Stay open after the run ends.")] = False,
    last_event_id: LastEventId = None,
    event_format: EventFormat = "flowqueue",
) -> Response:
    """Every event of the run after ``Last-Event-ID`` (or ``?after=``), exactly once and
    in order: the whole log, then live. Ends after the run's terminal event unless
    ``keep_open``."""
    ctx = context_of(request)
    cursor = last_event_id or after
    check_cursor("Last-Event-ID" if last_event_id else "after", cursor)
    await _run_events(ctx, flow, run_id, 1)
    if not keep_open:
        last = await _last_change(ctx, run_id)
        ended = bool(last) and last[0].kind in TERMINAL_KINDS
        if ended and cursor and parse_stream_id(cursor) >= parse_stream_id(last[0].id):
            return Response(status_code=204)  # EventSource stops reconnecting on 204
    return run_stream(ctx, run_id, cursor, keep_open, event_format)


async def _last_change(ctx: ApiContext, run_id: str) -> list[Event]:
    """The run's last event that is not a note (flow.rerun, appended to ended runs too)."""
    before: str | None = None
    while True:
        page = await ctx.store.read_reverse(run_id, before=before, limit=16)
        kept = [event for event in page if event.kind not in NOTE_KINDS]
        if kept or len(page) < 16:
            return kept[:1]
        before = page[-1].id


@router.post(
    "/api/_flows/{flow}/runs/{run_id}/cancel",
    response_model=Cancelled,
    responses=problem_responses(401, 404, 408, 409, 413, 422),
    openapi_extra=request_body(
        {"type": "object", "properties": {"reason": {"type": "string"}}}, required=False
    ),
)
async def cancel(request: Request, flow: Flow, run_id: RunId) -> Cancelled:
    """Cancel the run: flow.cancelled; its timers, waits and queued steps are dropped."""
    ctx = context_of(request)
    body = await json_body(request, default={})
    reason = body.get("reason", "") if isinstance(body, dict) else None
    if not isinstance(reason, str):
        raise ApiError(422, 'the body must be a JSON object like {"reason": "why"} (optional).')
    await _run_events(ctx, flow, run_id, 1)
    revoked = await run_in_threadpool(ctx.fq.orchestrator.cancel, run_id, reason)
    return Cancelled(run_id=run_id, revoked=revoked)


@router.post(
    "/api/_flows/{flow}/runs/{run_id}/rerun",
    response_model=Rerun,
    status_code=201,
    responses=problem_responses(401, 404, 408, 413, 422),
)
async def rerun(request: Request, flow: Flow, run_id: RunId) -> Rerun:
    """Start a new run of the flow with this run's input. The new run's flow.started has
    ``rerun_of`` and ``trigger`` ``{"kind": "rerun", "run_id": ...}``; this run's log gets
    a flow.rerun event naming the new run."""
    ctx = context_of(request)
    await _run_events(ctx, flow, run_id, 1)
    new_id = await run_in_threadpool(ctx.fq.orchestrator.rerun, run_id)
    warning = await _unserved(ctx, flow)
    warnings = [warning] if warning else []
    return Rerun(flow=flow, run_id=new_id, rerun_of=run_id, warnings=warnings)


@router.post(
    "/api/_flows/{flow}/runs/{run_id}/retry",
    response_model=Retried,
    responses=problem_responses(401, 404, 408, 409, 422),
)
async def retry(request: Request, flow: Flow, run_id: RunId) -> Retried:
    """Run a failed run again under its id and log (flow.retried): each failed step, and
    each step its failure cancelled, gets one more attempt with its recorded input. 409
    for a run that is not failed (nothing is written)."""
    ctx = context_of(request)
    await _run_events(ctx, flow, run_id, 1)
    steps = await run_in_threadpool(ctx.fq.orchestrator.retry, run_id)
    return Retried(run_id=run_id, steps=steps)


@public.post(
    "/api/_flows/triggers/{trigger_id}",
    response_model=Resumed,
    responses=problem_responses(404, 408, 409, 413, 422),
    openapi_extra=ANY_JSON_BODY,
)
async def resume_trigger(
    request: Request, trigger_id: Annotated[str, Path(max_length=128)]
) -> Resumed:
    """Resume the step awaiting this trigger with the JSON body (once; the id is in the
    run's step.await.trigger event)."""
    ctx = context_of(request)
    payload = await json_body(request)
    run_id = await run_in_threadpool(ctx.fq.orchestrator.resume, trigger_id, payload)
    return Resumed(run_id=run_id)


ROUTERS = (public, router, streams)
