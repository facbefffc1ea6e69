"""flowqueue: event-sourced flows on Celery.

Every run of a flow has one append-only event log (a Redis Stream); status, steps,
state and logs are derived from it by a pure reducer.
"""

from __future__ import annotations

from typing import Any

from flowqueue.celery_app import create_app, default_app, install
from flowqueue.client import get_run, list_flows, read_events, start_flow
from flowqueue.context import FlowContext
from flowqueue.errors import (
    ConfigurationError,
    EmbeddedRedisError,
    FlowDefinitionError,
    FlowqueueError,
    InvalidEvent,
    InvalidIdentifier,
    InvalidInput,
    MixedRunsError,
    NonJsonPayload,
    PayloadTooLarge,
    StepCalledDirectly,
    UnknownEventKind,
    UnknownFlow,
    UnknownRun,
)
from flowqueue.events import Event, EventKind, NewEvent
from flowqueue.flows import FlowInfo
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
from flowqueue.task import FlowTask, step

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> Any:
    # `flowqueue.app` (what `celery -A flowqueue` loads) is built on first access.
    if name == "app":
        return default_app()
    raise AttributeError(f"module 'flowqueue' has no attribute {name!r}")


__all__ = [
    "AsyncEventStore",
    "AsyncMemoryEventStore",
    "AsyncRedisEventStore",
    "ConfigurationError",
    "EmbeddedRedisError",
    "Event",
    "EventKind",
    "EventStore",
    "FlowContext",
    "FlowDefinitionError",
    "FlowInfo",
    "FlowTask",
    "FlowqueueError",
    "InvalidEvent",
    "InvalidIdentifier",
    "InvalidInput",
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
    "StepCalledDirectly",
    "StepState",
    "StepStatus",
    "UnknownEventKind",
    "UnknownFlow",
    "UnknownRun",
    "app",
    "apply",
    "create_app",
    "default_app",
    "get_run",
    "install",
    "list_flows",
    "new_run_id",
    "read_events",
    "reduce",
    "start_flow",
    "state_at",
    "step",
]
