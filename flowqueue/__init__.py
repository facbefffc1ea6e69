"""flowqueue: event-sourced flows on Celery.

Every run of a flow has one append-only event log (a Redis Stream); status, steps,
state and logs are derived from it by a pure reducer.
"""

from __future__ import annotations

from flowqueue.errors import (
    ConfigurationError,
    EmbeddedRedisError,
    FlowqueueError,
    InvalidEvent,
    InvalidIdentifier,
    MixedRunsError,
    NonJsonPayload,
    PayloadTooLarge,
    UnknownEventKind,
)
from flowqueue.events import Event, EventKind, NewEvent
from flowqueue.ids import new_run_id
from flowqueue.reducer import RunState, RunStatus, StepState, StepStatus, apply, reduce, state_at
from flowqueue.settings import Settings
from flowqueue.store import (
    AsyncEventStore,
    AsyncMemoryEventStore,
    AsyncRedisEventStore,
    EventStore,
    MemoryEventStore,
    RedisEventStore,
    RunSummary,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "AsyncEventStore",
    "AsyncMemoryEventStore",
    "AsyncRedisEventStore",
    "ConfigurationError",
    "EmbeddedRedisError",
    "Event",
    "EventKind",
    "EventStore",
    "FlowqueueError",
    "InvalidEvent",
    "InvalidIdentifier",
    "MemoryEventStore",
    "MixedRunsError",
    "NewEvent",
    "NonJsonPayload",
    "PayloadTooLarge",
    "RedisEventStore",
    "RunState",
    "RunStatus",
    "RunSummary",
    "Settings",
    "StepState",
    "StepStatus",
    "UnknownEventKind",
    "apply",
    "new_run_id",
    "reduce",
    "state_at",
]
