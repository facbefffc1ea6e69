"""What the routes of one API process share: the Celery app's flowqueue, one async
event store (so one Pub/Sub connection serves every SSE client of the process), the
SSE frame cache and the process's metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from fastapi import Request

from flowqueue.api.frames import FrameCache
from flowqueue.backend.redis.store import AsyncRedisEventStore
from flowqueue.backend.redis.topology import check_standalone
from flowqueue.backend.store import AsyncEventStore
from flowqueue.runtime.engine import Flowqueue
from flowqueue.settings import Settings


@dataclass
class ApiMetrics:
    """Counters of this process (Prometheus text at /metrics)."""

    sse_clients: int = 0
    sse_events_sent: int = 0
    sse_disconnected_slow: int = 0


@dataclass
class ApiContext:
    fq: Flowqueue
    settings: Settings
    store: AsyncEventStore
    redis: aioredis.Redis
    frames: FrameCache = field(default_factory=FrameCache)
    metrics: ApiMetrics = field(default_factory=ApiMetrics)

    @classmethod
    def open(cls, fq: Flowqueue) -> ApiContext:
        settings = fq.settings
        # A subscription's live buffer and backfill pages as small as a client's queue: per
        # client at most three buffers' worth of events, however slow it reads.
        size = settings.sse_client_buffer
        limited = fq.backend_settings().model_copy(
            update={"subscriber_buffer": size, "read_page_size": min(size, settings.read_page_size)}
        )
        if not fq.connections.memory:
            check_standalone(settings.redis_url)  # a Redis Cluster node: refused at start
        store = AsyncRedisEventStore(limited, archive=fq.open_archive())
        return cls(fq, settings, store, store.client)


def context_of(request: Request) -> ApiContext:
    ctx: Any = request.app.state.flowqueue
    assert isinstance(ctx, ApiContext)
    return ctx
