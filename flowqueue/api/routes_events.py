"""Events from outside any run, and the live feed of every run's lifecycle events."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from flowqueue.api.auth import require_token
from flowqueue.api.body import JSON_VALUE_REF, json_body, request_body
from flowqueue.api.context import context_of
from flowqueue.api.models import SignalIn, SignalSent
from flowqueue.api.problems import ApiError, problem_responses
from flowqueue.api.routes_flows import SSE_RESPONSES, After, EventFormat, LastEventId
from flowqueue.api.sse import feed_stream
from flowqueue.backend.checks import check_cursor

SIGNAL_SCHEMA = SignalIn.model_json_schema()
SIGNAL_SCHEMA["properties"]["payload"] = JSON_VALUE_REF
router = APIRouter(dependencies=[Depends(require_token)])
streams = APIRouter(dependencies=[Depends(require_token)])


@router.post(
    "/api/_signals",
    response_model=SignalSent,
    status_code=202,
    responses=problem_responses(401, 408, 413, 422),
    openapi_extra=request_body(SIGNAL_SCHEMA),
)
async def signal(request: Request) -> SignalSent:
    """Send a signal (an event from outside any run): it wakes every waiting step whose match its
    payload fits (and waits registered just after it still see it), and starts a run of each
    flow whose entry step declares ``on_event`` this name (``runs``), the payload as its input:
    a payload that does not fit their input model is refused (422) before anything is written.
    With ``idempotency_key``, a signal with the same name and key within
    FLOWQUEUE_IDEMPOTENCY_SECONDS gets the first one's answer and writes nothing."""
    ctx = context_of(request)
    try:
        body = SignalIn.model_validate(await json_body(request))
    except ValidationError as exc:
        raise ApiError(
            422, f'send {{"name": "...", "payload": ...}}: {exc.errors()[0]["msg"]}'
        ) from None
    sent = await run_in_threadpool(
        ctx.fq.orchestrator.signal, body.name, body.payload, idempotency_key=body.idempotency_key
    )
    return SignalSent(
        name=body.name,
        signal_id=sent.signal_id,
        woken=sent.woken,
        runs=sent.runs,
        replayed=sent.replayed,
    )


@streams.get(
    "/api/_events/stream",
    response_class=Response,
    responses={**SSE_RESPONSES, **problem_responses(401, 422)},
)
async def feed(
    request: Request,
    after: After = None,
    last_event_id: LastEventId = None,
    event_format: EventFormat = "flowqueue",
) -> Response:
    """Every run's lifecycle events (flow.* and step.*), live, for dashboards and run
    lists. SSE ids are positions in the capped feed (``FLOWQUEUE_FEED_MAXLEN``)."""
    ctx = context_of(request)
    cursor = last_event_id or after
    check_cursor("Last-Event-ID" if last_event_id else "after", cursor)
    return feed_stream(ctx, cursor, event_format)


ROUTERS = (router, streams)
