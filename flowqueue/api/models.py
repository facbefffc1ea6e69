"""Response and request bodies of the HTTP API (they make its OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from flowqueue.authoring.flows import FlowInfo
from flowqueue.backend.store import FlowStats, RunSummary
from flowqueue.model.cloudevents import CloudEvent
from flowqueue.model.events import Event
from flowqueue.model.validation import IDENT_PATTERN


class FlowOut(FlowInfo):
    """A flow, its steps and edges, and its live counters."""

    stats: FlowStats


class RunPage(BaseModel):
    runs: list[RunSummary]
    next_before: str | None = Field(
        default=None, description="Pass as ?before= for the next (older) page; null at the end."
    )


class EventPage(BaseModel):
    events: list[Event]
    next_after: str | None = Field(
        default=None, description="Pass as ?after= for the next page; null at the end."
    )


class CloudEventPage(BaseModel):
    """A page of a run's log with each event as a CloudEvents 1.0 envelope (``?format=``)."""

    events: list[CloudEvent]
    next_after: str | None = Field(
        default=None, description="Pass as ?after= for the next page; null at the end."
    )


class Started(BaseModel):
    flow: str
    run_id: str
    warnings: list[str] = Field(
        default_factory=list,
        description="Why the run may not progress, one line each (say, no live worker serves "
        "one of its steps); the run is started all the same. Empty when all is well.",
    )


class Cancelled(BaseModel):
    run_id: str
    revoked: list[str] = Field(description="Steps that were queued; their messages are revoked.")


class Resumed(BaseModel):
    run_id: str


class FlowDetail(FlowOut):
    """A flow, and the JSON Schema of the input that starts it (forms, the CLI's
    ``flowqueue start FLOW --help-input``)."""

    input_schema: dict[str, Any] | None = Field(
        description="What a run's input must fit: the entry step's input model (allOf when "
        "several entry steps declare one); null when none declares one (any JSON value)."
    )


class Rerun(Started):
    rerun_of: str = Field(description="The run whose input the new run was started with.")


class Retried(BaseModel):
    run_id: str
    steps: list[str] = Field(description="The steps sent again, one more attempt each.")


class SignalIn(BaseModel):
    name: str = Field(
        pattern=IDENT_PATTERN,
        description="Event name: 1-128 of letters, digits and '_.:-'.",
    )
    payload: Any = None  # documented as JsonValue (routes_events.SIGNAL_SCHEMA)
    idempotency_key: str | None = Field(
        default=None,
        pattern=IDENT_PATTERN,
        description="A signal with the same name and key within FLOWQUEUE_IDEMPOTENCY_SECONDS "
        "gets the first one's answer and writes nothing.",
    )


class SignalSent(BaseModel):
    name: str
    signal_id: str
    woken: int = Field(description="How many waiting steps it woke.")
    runs: dict[str, str] = Field(
        default_factory=dict,
        description="The runs it started, flow -> run id: one per flow whose entry step "
        "declares on_event=name.",
    )
    replayed: bool = Field(
        default=False,
        description="The idempotency_key was used before: this is that signal's answer, and "
        "nothing was written now.",
    )


class WebhookAccepted(BaseModel):
    webhook: str
    flow: str
    run_id: str = Field(description="The run the delivery started.")
    replayed: bool = Field(
        default=False,
        description="The sender's event id (the start's idempotency key) was seen within "
        "FLOWQUEUE_IDEMPOTENCY_SECONDS: run_id is the run its first delivery started, and "
        "nothing was started now.",
    )


class LoginIn(BaseModel):
    token: str


class QueueOut(BaseModel):
    name: str
    depth: int | None = Field(
        description="Messages waiting in the broker, every priority level counted (0 for an "
        "empty queue); null only when the broker says the queue does not exist (AMQP)."
    )


class Health(BaseModel):
    status: str
    redis: str


class About(BaseModel):
    """What the dashboard needs to know of this deployment."""

    version: str = Field(description="flowqueue's version.")
    flower_url: str | None = Field(
        default=None, description="FLOWQUEUE_FLOWER_URL: where steps' tasks are in Flower."
    )
    auth: bool = Field(description="Whether FLOWQUEUE_API_TOKEN is set.")
    session: bool = Field(
        description="Whether this request may use the API (its token or session cookie is "
        "valid, or auth is off): false means log in first."
    )
