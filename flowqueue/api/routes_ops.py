"""Operations: workers, queues, health, metrics, and the dashboard's login cookie."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from flowqueue.api.auth import COOKIE, require_token
from flowqueue.api.body import json_body
from flowqueue.api.context import ApiContext, context_of
from flowqueue.api.metrics import render_metrics
from flowqueue.api.models import Health, LoginIn, QueueOut
from flowqueue.api.problems import ApiError, problem_responses
from flowqueue.registry import WorkerInfo, read_workers_async

router = APIRouter(dependencies=[Depends(require_token)])
public = APIRouter()


@router.get("/api/_workers", response_model=list[WorkerInfo], responses=problem_responses(401))
async def workers(request: Request) -> list[WorkerInfo]:
    """Workers from the registry: online, lost (no heartbeat lately) or offline."""
    ctx = context_of(request)
    if ctx.redis is None:
        return []
    return await read_workers_async(ctx.redis, ctx.fq.keys, ctx.settings)


@router.get("/api/_queues", response_model=list[QueueOut], responses=problem_responses(401))
async def queues(request: Request) -> list[QueueOut]:
    """Messages waiting in each Celery queue the app routes to, read from the broker."""
    return await run_in_threadpool(_queue_depths, context_of(request))


def _queue_depths(ctx: ApiContext) -> list[QueueOut]:
    app = ctx.fq.app
    if app.conf.task_always_eager:
        return []
    names = sorted({*app.amqp.queues.keys(), app.conf.task_default_queue})
    out = []
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        for name in names:
            try:  # passive: never creates a queue; counts every priority level on Redis
                depth: int | None = channel.queue_declare(name, passive=True).message_count
            except Exception:  # absent on this broker (nothing sent to it yet)
                depth = None
            out.append(QueueOut(name=name, depth=depth))
    return out


@router.get("/metrics", response_class=PlainTextResponse, responses=problem_responses(401))
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text: events appended, runs by status, steps awaiting, step durations,
    SSE clients of this process."""
    text = await render_metrics(context_of(request))
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


@public.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(request: Request) -> Any:
    """200 when Redis answers; 503 otherwise. Needs no token."""
    ctx = context_of(request)
    if ctx.redis is None:
        return Health(status="ok", redis="memory")
    try:
        await ctx.redis.ping()
    except Exception as exc:
        body = Health(status="unavailable", redis=f"{type(exc).__name__}: {exc}")
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ok", redis="ok")


@public.post(
    "/api/_login",
    status_code=204,
    response_class=Response,
    responses=problem_responses(401, 413, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": LoginIn.model_json_schema()}},
        }
    },
)
async def login(request: Request) -> Response:
    """Set the HttpOnly cookie that lets a browser's EventSource open the SSE routes."""
    ctx = context_of(request)
    try:
        body = LoginIn.model_validate(await json_body(request, 4096))
    except ValidationError:
        raise ApiError(422, 'send {"token": "<FLOWQUEUE_API_TOKEN>"}.') from None
    expected = ctx.settings.api_token
    response = Response(status_code=204)
    if expected is None:
        return response  # no token configured: nothing to remember
    secret = expected.get_secret_value()
    if not secrets.compare_digest(body.token.encode(), secret.encode()):
        raise ApiError(401, "wrong token.")
    response.set_cookie(COOKIE, secret, httponly=True, samesite="strict", path="/")
    return response


ROUTERS = (public, router)
