"""The event record: one line of a run's append-only log.

``NewEvent`` is what callers build; the store assigns ``id`` and ``ts`` and returns an
``Event``. Validation happens when a ``NewEvent`` is built, and the size limit when it is
encoded, so a bad event raises an ``InvalidEvent`` before anything is written.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_serializer, field_validator
from pydantic_core import from_json, to_json

from flowqueue.errors import (
    InvalidEvent,
    InvalidIdentifier,
    NonJsonPayload,
    PayloadTooLarge,
    UnknownEventKind,
)
from flowqueue.ids import format_ts, ms_to_datetime, stream_id_ms


class EventKind(StrEnum):
    """Every kind of event a run's log may hold (documented in the README too)."""

    FLOW_STARTED = "flow.started"  # data: {input}
    FLOW_COMPLETED = "flow.completed"  # data: {result?}
    FLOW_FAILED = "flow.failed"  # data: {error: {type, message}, step?}
    FLOW_CANCELLED = "flow.cancelled"  # data: {reason}
    STEP_STARTED = "step.started"  # data: {attempt, task_id?, worker?}
    STEP_COMPLETED = "step.completed"  # data: {result?}
    STEP_FAILED = "step.failed"  # data: {error, attempt, will_retry, next_retry_at?}
    STEP_RETRY = "step.retry"  # data: {attempt, delay_s?}
    STEP_AWAIT_TIME = "step.await.time"  # data: {key, until}
    STEP_AWAIT_EVENT = "step.await.event"  # data: {key, name, match?, timeout_at?}
    STEP_AWAIT_TRIGGER = "step.await.trigger"  # data: {key, trigger_id, info?, timeout_at?}
    STEP_RESUMED = "step.resumed"  # data: {key, result?}
    STEP_AWAIT_TIMEOUT = "step.await.timeout"  # data: {key}
    EMIT = "emit"  # data: {name, payload}
    LOG = "log"  # data: {level, msg, fields?}
    STATE_SET = "state.set"  # data: {key, value}
    STATE_DELETE = "state.delete"  # data: {key}


KNOWN_KINDS: frozenset[str] = frozenset(k.value for k in EventKind)
TERMINAL_KINDS: frozenset[str] = frozenset(
    {EventKind.FLOW_COMPLETED, EventKind.FLOW_FAILED, EventKind.FLOW_CANCELLED}
)
# Kinds mirrored to the cross-run lifecycle feed (dashboards, run lists).
LIFECYCLE_KINDS: frozenset[str] = frozenset(
    k.value for k in EventKind if k.value.startswith(("flow.", "step."))
)
RUN_STATUS_BY_KIND: dict[str, str] = {
    EventKind.FLOW_STARTED: "running",
    EventKind.FLOW_COMPLETED: "completed",
    EventKind.FLOW_FAILED: "failed",
    EventKind.FLOW_CANCELLED: "cancelled",
}

# No braces (they delimit the Redis Cluster hash tag), whitespace or control characters.
_IDENT = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")


def check_identifier(what: str, value: str) -> str:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise InvalidIdentifier(
            f"{what} {value!r} is not valid: use 1-128 characters from letters, digits and '_.:-'."
        )
    return value


def check_json(value: Any, path: str) -> None:
    """Raise ``NonJsonPayload`` naming the first value JSON cannot represent exactly."""
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NonJsonPayload(
                f"{path} is {value!r}, which JSON cannot represent; send a finite number or null."
            )
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise NonJsonPayload(
                    f"{path} has key {key!r} of type {type(key).__name__}; JSON object keys "
                    "must be strings."
                )
            check_json(item, f"{path}.{key}")
        return
    if isinstance(value, list):
        for index, item in enumerate(value):
            check_json(item, f"{path}[{index}]")
        return
    raise NonJsonPayload(
        f"{path} is a {type(value).__name__}, which is not JSON; convert it to a string, "
        "number, bool, null, list or object first (e.g. datetime.isoformat())."
    )


class NewEvent(BaseModel):
    """An event before the store has given it an id and a timestamp."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    run_id: str
    flow: str
    step: str | None = None
    data: dict[str, Any] = {}
    meta: dict[str, Any] = {}

    def __init__(self, **fields: Any) -> None:
        try:
            super().__init__(**fields)
        except ValidationError as exc:
            # Report pydantic's problems as one of ours, so callers catch one tree.
            raise InvalidEvent(f"invalid event: {exc}") from exc

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in KNOWN_KINDS:
            raise UnknownEventKind(
                f"unknown event kind {value!r}; use one of: {', '.join(sorted(KNOWN_KINDS))}."
            )
        return value

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, value: str) -> str:
        return check_identifier("run id", value)

    @field_validator("flow")
    @classmethod
    def _flow(cls, value: str) -> str:
        return check_identifier("flow name", value)

    @field_validator("step")
    @classmethod
    def _step(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier("step name", value)

    @field_validator("data", "meta", mode="before")
    @classmethod
    def _json_object(cls, value: Any, info: Any) -> Any:
        if not isinstance(value, dict):
            raise NonJsonPayload(
                f"event {info.field_name} must be a JSON object (a dict), got "
                f"{type(value).__name__}."
            )
        check_json(value, info.field_name)
        return value

    def body(self) -> dict[str, Any]:
        """The stored part of the event (everything but id and ts)."""
        return {
            "kind": self.kind,
            "run_id": self.run_id,
            "flow": self.flow,
            "step": self.step,
            "data": self.data,
            "meta": self.meta,
        }


class Event(NewEvent):
    """A stored event: ``id`` is its stream id, ``ts`` the server time it was appended."""

    id: str
    ts: datetime

    @field_serializer("ts")
    def _ts_iso_ms(self, value: datetime) -> str:
        return format_ts(value)

    @classmethod
    def from_stored(cls, event_id: str, body: dict[str, Any]) -> Event:
        """Build from trusted store contents without re-validating."""
        return cls.model_construct(
            id=event_id,
            ts=ms_to_datetime(stream_id_ms(event_id)),
            kind=body["kind"],
            run_id=body["run_id"],
            flow=body["flow"],
            step=body.get("step"),
            data=body.get("data") or {},
            meta=body.get("meta") or {},
        )

    @classmethod
    def stamped(cls, event: NewEvent, event_id: str) -> Event:
        """The stored form of a ``NewEvent`` (already validated) under its new id."""
        return cls.model_construct(
            id=event_id,
            ts=ms_to_datetime(stream_id_ms(event_id)),
            kind=event.kind,
            run_id=event.run_id,
            flow=event.flow,
            step=event.step,
            data=event.data,
            meta=event.meta,
        )

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


def encode_body(event: NewEvent, max_bytes: int) -> bytes:
    """Serialise an event's stored part, enforcing the payload size limit."""
    raw = to_json(event.body())
    if len(raw) > max_bytes:
        raise PayloadTooLarge(
            f"{event.kind} event for run {event.run_id} is {len(raw)} bytes encoded; the limit "
            f"is {max_bytes} (FLOWQUEUE_MAX_PAYLOAD_BYTES). Store large data elsewhere and put "
            "a reference in the event."
        )
    return raw


def decode_body(raw: bytes | str) -> dict[str, Any]:
    body: dict[str, Any] = from_json(raw)
    return body


def decode_event(event_id: str | bytes, raw: bytes | str) -> Event:
    if isinstance(event_id, bytes):
        event_id = event_id.decode()
    return Event.from_stored(event_id, decode_body(raw))


def event_from_json(raw: bytes | str) -> Event:
    """Parse an ``Event`` from its public JSON form (``Event.to_json``)."""
    try:
        return Event.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidEvent(f"not an event: {exc}") from exc
