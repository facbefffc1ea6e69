"""Event stores: the ``EventStore`` / ``AsyncEventStore`` interfaces and their
implementations (Redis for production, memory for single-process use)."""

from __future__ import annotations

from flowqueue.store.base import AsyncEventStore, EventStore, RunSummary
from flowqueue.store.redis import AsyncRedisEventStore, RedisEventStore

__all__ = [
    "AsyncEventStore",
    "AsyncRedisEventStore",
    "EventStore",
    "RedisEventStore",
    "RunSummary",
]
