"""Start triggers: list them (schedules, event triggers, webhooks), page a trigger's
history in the trigger registry, pause and resume a schedule."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from flowqueue.api.auth import require_token
from flowqueue.api.context import context_of
from flowqueue.api.problems import ApiError, problem_responses
from flowqueue.backend.checks import check_cursor
from flowqueue.model.ids import STREAM_ID_PATTERN
from flowqueue.runtime.triggers import (
    TriggerInfo,
    TriggerPage,
    declares_trigger,
    list_triggers,
    pause_schedule,
    trigger_history,
)

router = APIRouter(dependencies=[Depends(require_token)])
Name = Annotated[str, Path(description="Trigger name.", max_length=128)]
MAX_PAGE = 1_000


class ScheduleChanged(BaseModel):
    name: str
    status: Literal["active", "paused"]
    changed: bool = Field(description="False when it was so already (nothing recorded).")


@router.get("/api/_triggers", response_model=list[TriggerInfo], responses=problem_responses(401))
async def triggers(request: Request) -> list[TriggerInfo]:
    """Every start trigger of the app (schedules, event triggers, webhooks): its kind, flow,
    status, last firing and, for a schedule, its next fire times."""
    return await run_in_threadpool(list_triggers, context_of(request).fq)


@router.get(
    "/api/_triggers/{name}/history",
    response_model=TriggerPage,
    responses=problem_responses(401, 404, 422),
)
async def history(
    request: Request,
    name: Name,
    before: Annotated[
        str | None, Query(pattern=STREAM_ID_PATTERN, description="Records before this id.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> TriggerPage:
    """The trigger's records in the trigger registry, newest first: each firing with the
    run it started, and a schedule's pauses and resumes; ``next_before`` pages to older."""
    check_cursor("before", before)
    fq = context_of(request).fq
    page = await run_in_threadpool(trigger_history, fq, name, before, limit)
    if (
        not page.firings
        and before is None
        and not await run_in_threadpool(declares_trigger, fq, name)
    ):
        raise ApiError(404, f"no trigger {name!r}; GET /api/_triggers lists them.")
    return page


async def _pause(request: Request, name: str, pause: bool) -> ScheduleChanged:
    changed = await run_in_threadpool(pause_schedule, context_of(request).fq, name, pause)
    return ScheduleChanged(name=name, status="paused" if pause else "active", changed=changed)


@router.post(
    "/api/_schedules/{name}/pause",
    response_model=ScheduleChanged,
    responses=problem_responses(401, 404, 422),
)
async def pause(request: Request, name: Name) -> ScheduleChanged:
    """Pause a schedule: no tick fires until it is resumed (a ``trigger.paused`` record)."""
    return await _pause(request, name, True)


@router.post(
    "/api/_schedules/{name}/resume",
    response_model=ScheduleChanged,
    responses=problem_responses(401, 404, 422),
)
async def resume(request: Request, name: Name) -> ScheduleChanged:
    """Resume a schedule from now: the ticks of the pause never fire, not even late."""
    return await _pause(request, name, False)


ROUTERS = (router,)
