"""flowqueue: event-sourced flows on Celery.

Every run of a flow has one append-only event log (a Redis Stream); status, steps, state
and logs are derived from it by a pure reducer. This module exports what a flow author
and a caller of flows use; the rest stays in its own module: the store
(``flowqueue.backend.redis.store``), the reducer (``flowqueue.model.reducer``), every
error (``flowqueue.errors``) and the settings (``flowqueue.settings``).
"""

from __future__ import annotations

from typing import Any

from flowqueue.authoring.awaits import Sleep, WaitForEvent, WaitForTrigger
from flowqueue.authoring.context import FlowContext
from flowqueue.authoring.flows import FlowInfo
from flowqueue.authoring.retry import Retry
from flowqueue.authoring.schedules import Schedule
from flowqueue.authoring.step import FlowTask, step
from flowqueue.authoring.webhooks import (
    GitHub,
    NoVerification,
    Slack,
    StandardWebhooks,
    Stripe,
    Webhook,
)
from flowqueue.errors import AwaitTimeout, FlowqueueError, NonRetriableError
from flowqueue.model.events import Event
from flowqueue.model.reducer import RunState, RunStatus, StepState, StepStatus
from flowqueue.runtime.app import create_app, default_app, install
from flowqueue.runtime.client import (
    Signalled,
    cancel,
    get_run,
    list_flows,
    read_events,
    resume,
    signal,
    start_flow,
)
from flowqueue.settings import Settings

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> Any:
    # `flowqueue.app` (what `celery -A flowqueue` loads) is built on first access.
    if name == "app":
        return default_app()
    raise AttributeError(f"module 'flowqueue' has no attribute {name!r}")


__all__ = [  # noqa: RUF022 - grouped by use, as dramatiq does
    # declaring flows
    "step",
    "FlowTask",
    "FlowContext",
    "Retry",
    "Sleep",
    "WaitForEvent",
    "WaitForTrigger",
    # starting runs on a schedule
    "Schedule",
    # starting runs by webhook
    "Webhook",
    "StandardWebhooks",
    "Stripe",
    "GitHub",
    "Slack",
    "NoVerification",
    "AwaitTimeout",
    "NonRetriableError",
    # the Celery app
    "app",
    "create_app",
    "default_app",
    "install",
    "Settings",
    # starting runs and reading them
    "start_flow",
    "signal",
    "Signalled",
    "resume",
    "cancel",
    "get_run",
    "read_events",
    "list_flows",
    "Event",
    "FlowInfo",
    "RunState",
    "RunStatus",
    "StepState",
    "StepStatus",
    # every error derives from this one
    "FlowqueueError",
]
