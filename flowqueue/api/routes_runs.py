"""Runs across flows: by flow, status, start time, step, error text and state
(runtime/queries.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from flowqueue.api.auth import require_token
from flowqueue.api.context import context_of
from flowqueue.api.problems import ApiError, problem_responses
from flowqueue.model.reducer import RunStatus
from flowqueue.model.validation import IDENT_PATTERN
from flowqueue.runtime.queries import RunQuery, RunQueryPage, query_runs

router = APIRouter(dependencies=[Depends(require_token)])
Ident = Annotated[str | None, Query(max_length=128, pattern=IDENT_PATTERN)]


@router.get("/api/_runs", response_model=RunQueryPage, responses=problem_responses(401, 404, 422))
async def runs(
    request: Request,
    flow: Annotated[list[str], Query(description="Its flow (repeat for several).")] = [],  # noqa: B006
    status: RunStatus | None = None,
    since: Annotated[datetime | None, Query(description="Started at or after (ISO 8601).")] = None,
    until: Annotated[datetime | None, Query(description="Started before (ISO 8601).")] = None,
    step: Ident = None,
    error: Annotated[
        str | None, Query(max_length=200, description="Failed, with this text in its error.")
    ] = None,
    state: Annotated[
        str | None,
        Query(
            max_length=4096,
            description="KEY: its state holds KEY; KEY=VALUE: with this value (JSON, or else "
            "the text as a string).",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Ident = None,
) -> RunQueryPage:
    """Runs of any flow, newest first, that match every filter given. A page looks at a
    bounded number of runs: it may hold fewer than ``limit``, and ``next_before`` (null
    at the end) goes on from where it stopped."""
    ctx = context_of(request)
    for name in flow:
        ctx.fq.flows.flow(name)  # UnknownFlow: 404
    try:
        query = RunQuery(
            flows=flow,
            status=status,
            since=since,
            until=until,
            step=step,
            error=error,
            limit=limit,
            **(RunQuery.state_filter(state) if state is not None else {}),
            before=before,
        )
    except ValidationError as exc:
        raise ApiError(422, str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
    return await run_in_threadpool(query_runs, query, app=ctx.fq.app)


ROUTERS = (router,)
