"""Operations: workers, queues, health, metrics, and the dashboard's login cookie."""

from __future__ import annotations

from contextlib import suppress
from importlib.metadata import version
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from flowqueue.api.auth import (
    auth_of,
    clear_session_cookie,
    require_token,
    set_session_cookie,
    token_matches,
)
from flowqueue.api.body import json_body, request_body
from flowqueue.api.context import ApiContext, context_of
from flowqueue.api.models import About, Health, LoginIn, QueueOut
from flowqueue.api.problems import ApiError, problem_responses
from flowqueue.backend.store import DURATION_BUCKETS_MS, FlowStats
from flowqueue.runtime.workers import WorkerInfo, read_workers_async

router = APIRouter(dependencies=[Depends(require_token)])
public = APIRouter()
RUN_STATUSES = ("running", "completed", "failed", "cancelled")


@public.get("/api/_about", response_model=About)
async def about(request: Request) -> About:
    """flowqueue's version, whether a token is set and whether this request carries a
    valid one (or session cookie): the dashboard shows its login form without a 401 first.
    Public; Flower's address (FLOWQUEUE_FLOWER_URL) is only told to an authorised caller."""
    settings = context_of(request).settings
    auth = settings.api_token is not None
    session = not auth or token_matches(request, cookie=True)
    return About(
        version=version("flowqueue"),
        flower_url=settings.flower_url if session else None,
        auth=auth,
        session=session,
    )


@router.get("/api/_workers", response_model=list[WorkerInfo], responses=problem_responses(401))
async def workers(request: Request) -> list[WorkerInfo]:
    """Workers from the registry: online, lost (no heartbeat lately) or offline."""
    ctx = context_of(request)
    return await read_workers_async(ctx.redis, ctx.fq.keys, ctx.settings)


@router.get("/api/_queues", response_model=list[QueueOut], responses=problem_responses(401, 503))
async def queues(request: Request) -> list[QueueOut]:
    """Messages waiting in each Celery queue the app routes to, read from the broker."""
    return await run_in_threadpool(_queue_depths, context_of(request))


def _queue_depths(ctx: ApiContext) -> list[QueueOut]:
    app = ctx.fq.app
    if app.conf.task_always_eager:
        return []
    names = sorted({*app.amqp.queues.keys(), app.conf.task_default_queue})
    with app.connection_for_read() as connection:

        def declared_depth(name: str) -> int | None:
            # A fresh channel per probe: on AMQP a failed passive declare closes its channel.
            channel = connection.channel()
            try:  # passive: never creates a queue
                return int(channel.queue_declare(name, passive=True).message_count)
            except connection.channel_errors as exc:
                if str(getattr(exc, "reply_code", "")) == "404":
                    return None  # the broker says there is no such queue
                raise
            finally:
                with suppress(*connection.channel_errors, *connection.connection_errors):
                    channel.close()

        try:
            if connection.transport.driver_type == "redis":
                # An empty Redis queue is an absent key (a passive declare would say "no such
                # queue"): count its lists, one per priority level, as kombu does.
                channel = connection.channel()
                return [QueueOut(name=name, depth=int(channel._size(name))) for name in names]
            return [QueueOut(name=name, depth=declared_depth(name)) for name in names]
        except (*connection.connection_errors, *connection.channel_errors) as exc:
            raise ApiError(
                503,
                f"the Celery broker did not answer ({type(exc).__name__}: {exc}); check that "
                "it is up and that CELERY_BROKER_URL (or FLOWQUEUE_REDIS_URL) points at it.",
            ) from None


@router.get("/metrics", response_class=PlainTextResponse, responses=problem_responses(401))
async def metrics(request: Request) -> PlainTextResponse:
    """Prometheus text: events appended, runs by status, steps awaiting, step durations,
    SSE clients of this process."""
    ctx = context_of(request)
    lines = [
        "# HELP flowqueue_events_appended_total Events appended to the runs of a flow.",
        "# TYPE flowqueue_events_appended_total counter",
    ]
    runs = ["# HELP flowqueue_runs Runs of a flow by status.", "# TYPE flowqueue_runs gauge"]
    awaiting = [
        "# HELP flowqueue_steps_awaiting Steps awaiting a time, an event or a trigger.",
        "# TYPE flowqueue_steps_awaiting gauge",
    ]
    durations = [
        "# HELP flowqueue_step_duration_seconds How long finished step attempts took.",
        "# TYPE flowqueue_step_duration_seconds histogram",
    ]
    for flow in sorted(ctx.fq.flows.flows):
        # Kept in Redis by every append, so every API process reports the same numbers.
        stats = await ctx.store.flow_stats(flow)
        name = _label(flow)
        lines.append(f'flowqueue_events_appended_total{{flow="{name}"}} {stats.events}')
        for status in RUN_STATUSES:
            count = getattr(stats, status)
            runs.append(f'flowqueue_runs{{flow="{name}",status="{status}"}} {count}')
        awaiting.append(f'flowqueue_steps_awaiting{{flow="{name}"}} {stats.awaiting}')
        durations += _histogram(name, stats)
    m = ctx.metrics
    process = [
        "# HELP flowqueue_sse_clients SSE clients connected to this process.",
        "# TYPE flowqueue_sse_clients gauge",
        f"flowqueue_sse_clients {m.sse_clients}",
        "# HELP flowqueue_sse_events_sent_total Events sent to SSE clients by this process.",
        "# TYPE flowqueue_sse_events_sent_total counter",
        f"flowqueue_sse_events_sent_total {m.sse_events_sent}",
        "# HELP flowqueue_sse_slow_disconnects_total SSE clients disconnected for falling behind.",
        "# TYPE flowqueue_sse_slow_disconnects_total counter",
        f"flowqueue_sse_slow_disconnects_total {m.sse_disconnected_slow}",
    ]
    archive = await _archive_lag(ctx) if ctx.settings.archive_url else []
    text = "\n".join([*lines, *runs, *awaiting, *durations, *archive, *process]) + "\n"
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")


async def _archive_lag(ctx: ApiContext) -> list[str]:
    """Ended runs waiting for the archiver, and how long the oldest has waited: what to
    alert on (they stay in Redis, with no expiry, until copied)."""
    key = ctx.fq.keys.archiving
    waiting = await ctx.redis.zcard(key)
    oldest = await ctx.redis.zrange(key, 0, 0, withscores=True)
    now_s = (await ctx.redis.time())[0]
    wait_s = max(0.0, now_s - float(oldest[0][1]) / 1000) if oldest else 0.0
    return [
        "# HELP flowqueue_archive_waiting Ended runs waiting to be copied to the archive.",
        "# TYPE flowqueue_archive_waiting gauge",
        f"flowqueue_archive_waiting {waiting}",
        "# HELP flowqueue_archive_oldest_wait_seconds How long the oldest of them has waited.",
        "# TYPE flowqueue_archive_oldest_wait_seconds gauge",
        f"flowqueue_archive_oldest_wait_seconds {wait_s:.3f}",
    ]


def _histogram(flow: str, stats: FlowStats) -> list[str]:
    """The stored buckets are per range; Prometheus buckets are cumulative."""
    metric, out, total = "flowqueue_step_duration_seconds", [], 0
    for bound in DURATION_BUCKETS_MS:
        total += stats.step_ms_buckets.get(str(bound), 0)
        out.append(f'{metric}_bucket{{flow="{flow}",le="{bound / 1000:g}"}} {total}')
    total += stats.step_ms_buckets.get("inf", 0)
    out.append(f'{metric}_bucket{{flow="{flow}",le="+Inf"}} {total}')
    out.append(f'{metric}_sum{{flow="{flow}"}} {stats.step_ms_sum / 1000:g}')
    out.append(f'{metric}_count{{flow="{flow}"}} {total}')
    return out


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@public.get("/healthz", response_model=Health, responses={503: {"model": Health}})
async def healthz(request: Request) -> Any:
    """200 when Redis answers; 503 otherwise. Needs no token."""
    ctx = context_of(request)
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
    responses=problem_responses(401, 408, 413, 422, 429),
    openapi_extra=request_body(LoginIn.model_json_schema()),
)
async def login(request: Request) -> Response:
    """Set the signed, expiring HttpOnly session cookie that lets a browser's EventSource
    open the SSE routes (and the docs). Rate-limited per client IP."""
    auth = auth_of(request)
    if auth.token is not None:  # every attempt counts, before anything is checked
        await auth.login_limiter.hit(request)
    try:
        body = LoginIn.model_validate(
            await json_body(request, limit=4096, limit_name="a login body's fixed limit")
        )
    except ValidationError:
        raise ApiError(422, 'send {"token": "<FLOWQUEUE_API_TOKEN>"}.') from None
    if not auth.token_ok(body.token):
        raise ApiError(401, "wrong token.")
    response = Response(status_code=204)
    if auth.token is not None:  # with auth off there is nothing to remember
        set_session_cookie(request, response)
    return response


@public.post("/api/_logout", status_code=204, response_class=Response)
async def logout(request: Request) -> Response:
    """Clear the session cookie (needs no token: an expired session can log out too)."""
    response = Response(status_code=204)
    clear_session_cookie(request, response)
    return response


ROUTERS = (public, router)
