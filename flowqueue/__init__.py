"""flowqueue: event-sourced flows on Celery.

Every run of a flow has one append-only event log (a Redis Stream); status, steps,
state and logs are derived from it by a pure reducer.
"""

from __future__ import annotations

from typing import Any

from flowqueue.authoring.awaits import Sleep, WaitForEvent, WaitForTrigger
from flowqueue.authoring.context import FlowContext
from flowqueue.authoring.flows import FlowInfo
from flowqueue.authoring.retry import Retry
from flowqueue.authoring.step import FlowTask, step
from flowqueue.backend.redis.store import AsyncRedisEventStore, RedisEventStore
from flowqueue.backend.store import AsyncEventStore, EventStore, RunSummary
from flowqueue.errors import (
    AwaitTimeout,
    BrokerUnavailable,
    ConfigurationError,
    EmbeddedRedisError,
    FlowDefinitionError,
    FlowqueueError,
    InvalidEvent,
    InvalidIdentifier,
    InvalidInput,
    InvalidSignal,
    MixedRunsError,
    NonDeterminismError,
    NonJsonPayload,
    NonRetriableError,
    PayloadTooLarge,
    RunAlreadyEnded,
    StepCalledDirectly,
    TriggerAlreadyUsed,
    UnknownEventKind,
    UnknownFlow,
    UnknownRun,
    UnknownTrigger,
)
from flowqueue.model.events import Event, EventKind, NewEvent
from flowqueue.model.ids import new_run_id
from flowqueue.model.reducer import (
    RunState,
    RunStatus,
    StepState,
    StepStatus,
    apply,
    reduce,
    state_at,
)
from flowqueue.runtime.app import create_app, default_app, install
from flowqueue.runtime.client import (
    cancel,
    emit,
    get_run,
    list_flows,
    read_events,
    resume,
    start_flow,
)
from flowqueue.settings import Settings

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> Any:
    # `flowqueue.app` (what `celery -A flowqueue` loads) is built on first access.
    if name == "app":
        return default_app()
    raise AttributeError(f"module 'flowqueue' has no attribute {name!r}")


__all__ = [
    "AsyncEventStore",
    "AsyncRedisEventStore",
    "AwaitTimeout",
    "BrokerUnavailable",
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
    "InvalidSignal",
    "MixedRunsError",
    "NewEvent",
    "NonDeterminismError",
    "NonJsonPayload",
    "NonRetriableError",
    "PayloadTooLarge",
    "RedisEventStore",
    "Retry",
    "RunAlreadyEnded",
    "RunState",
    "RunStatus",
    "RunSummary",
    "Settings",
    "Sleep",
    "StepCalledDirectly",
    "StepState",
    "StepStatus",
    "TriggerAlreadyUsed",
    "UnknownEventKind",
    "UnknownFlow",
    "UnknownRun",
    "UnknownTrigger",
    "WaitForEvent",
    "WaitForTrigger",
    "app",
    "apply",
    "cancel",
    "create_app",
    "default_app",
    "emit",
    "get_run",
    "install",
    "list_flows",
    "new_run_id",
    "read_events",
    "reduce",
    "resume",
    "start_flow",
    "state_at",
    "step",
]
