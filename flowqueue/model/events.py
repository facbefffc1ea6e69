"""The event record: one line of a run's append-only log.

``NewEvent`` is what callers build; the store assigns ``id`` and ``ts`` and returns an
``Event``. Validation happens when a ``NewEvent`` is built, and the size limit when it is
encoded, so a bad event raises an ``InvalidEvent`` before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Set
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_serializer, model_validator
from pydantic_core import from_json, to_json

from flowqueue.errors import InvalidEvent, PayloadTooLarge
from flowqueue.model.ids import format_ts, ms_to_datetime, stream_id_ms
from flowqueue.model.validation import EVENT_FIELDS, check_event_fields

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


class EventKind(StrEnum):
    """Every kind of event a run's log may hold (documented in the README too)."""

    FLOW_STARTED = "flow.started"  # data: {input, trigger, rerun_of?}
    FLOW_COMPLETED = "flow.completed"  # data: {result?}
    FLOW_FAILED = "flow.failed"  # data: {error: {type, message}, step?}
    FLOW_CANCELLED = "flow.cancelled"  # data: {reason}
    FLOW_RERUN = "flow.rerun"  # data: {rerun} (the new run started with this one's input)
    FLOW_RETRIED = "flow.retried"  # data: {steps} (a failed run running again; steps re-sent)
    STEP_STARTED = "step.started"  # data: {attempt, task_id?, worker?}
    STEP_COMPLETED = "step.completed"  # data: {result?}
    STEP_FAILED = "step.failed"  # data: {error, attempt, will_retry, next_retry_at?}
    STEP_RETRY = "step.retry"  # data: {attempt, delay_s?}
    STEP_AWAIT_TIME = "step.await.time"  # data: {key, until}
    STEP_AWAIT_EVENT = "step.await.event"  # data: {key, name, match?, timeout_at?}
    STEP_AWAIT_TRIGGER = "step.await.trigger"  # data: {key, trigger_id, info?, timeout_at?}
    STEP_RESUMED = "step.resumed"  # data: {key, result?}
    STEP_AWAIT_TIMEOUT = "step.await.timeout"  # data: {key}
    STEP_ONCE = "step.once"  # data: {key, name, result} (a ctx.once block's recorded result)
    EMIT = "emit"  # data: {name, payload}
    LOG = "log"  # data: {level, msg, fields?}
    STATE_SET = "state.set"  # data: {key, value}
    STATE_DELETE = "state.delete"  # data: {key}


KNOWN_KINDS: frozenset[str] = frozenset(k.value for k in EventKind)
# Made only by readers, never written: a stored record that could not be decoded (see
# ``unreadable``). Readers yield it in the record's place, so one bad record never
# stops a stream, and a cursor can move past it.
UNREADABLE = "record.unreadable"  # data: {key, error}
TERMINAL_KINDS: frozenset[str] = frozenset(
    {EventKind.FLOW_COMPLETED, EventKind.FLOW_FAILED, EventKind.FLOW_CANCELLED}
)
# Kinds that note something about a run without changing it: appended to an ended run
# too, so "the last event is terminal" skips them.
NOTE_KINDS: frozenset[str] = frozenset({EventKind.FLOW_RERUN})
# Kinds mirrored to the cross-run lifecycle feed (dashboards, run lists).
LIFECYCLE_KINDS: frozenset[str] = frozenset(
    k.value
    for k in EventKind
    if k.value.startswith(("flow.", "step.")) and k is not EventKind.STEP_ONCE
)
# A step starts awaiting / stops awaiting (counted per flow by the stores).
AWAIT_KINDS: frozenset[str] = frozenset(
    {EventKind.STEP_AWAIT_TIME, EventKind.STEP_AWAIT_EVENT, EventKind.STEP_AWAIT_TRIGGER}
)
AWAIT_END_KINDS: frozenset[str] = frozenset({EventKind.STEP_RESUMED, EventKind.STEP_AWAIT_TIMEOUT})
RUN_STATUS_BY_KIND: dict[str, str] = {
    EventKind.FLOW_STARTED: "running",
    EventKind.FLOW_COMPLETED: "completed",
    EventKind.FLOW_FAILED: "failed",
    EventKind.FLOW_CANCELLED: "cancelled",
}


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
        # Hot path: one pass of our own checks, then the trusted construction that
        # model_construct does, minus its generic overhead (3x faster than validating).
        _set_trusted(self, check_event_fields(fields, KNOWN_KINDS), fields.keys())

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, values: Any) -> Any:
        """The same rules for ``model_validate`` / JSON input."""
        if not isinstance(values, dict):
            raise InvalidEvent(f"an event must be a JSON object, got {type(values).__name__}.")
        return check_event_fields(values, KNOWN_KINDS)

    def body(self) -> dict[str, Any]:
        """The stored part of the event (everything but id and ts)."""
        return {name: self.__dict__[name] for name in EVENT_FIELDS}


class Event(NewEvent):
    """A stored event: ``id`` is its stream id, ``ts`` the server time it was appended."""

    id: str
    ts: datetime

    def __init__(self, **fields: Any) -> None:
        try:
            BaseModel.__init__(self, **fields)
        except ValidationError as exc:
            raise InvalidEvent(f"invalid event: {exc}") from exc

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            raise InvalidEvent(f"an event must be a JSON object, got {type(values).__name__}.")
        if values.get("kind") == UNREADABLE:
            return values  # a reader's placeholder: its ids may be unknown
        rest = {k: v for k, v in values.items() if k not in _STORED_ONLY}
        stamp = {k: v for k, v in values.items() if k in _STORED_ONLY}
        return check_event_fields(rest, KNOWN_KINDS) | stamp

    @field_serializer("ts")
    def _ts_iso_ms(self, value: datetime) -> str:
        return format_ts(value)

    @classmethod
    def stamped(cls, event: NewEvent, event_id: str) -> Event:
        """The stored form of a ``NewEvent`` (already validated) under its new id."""
        return _trusted_event(event_id, dict(event.__dict__))

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


_STORED_ONLY = frozenset({"id", "ts"})
_ALL_EVENT_FIELDS = frozenset(EVENT_FIELDS) | _STORED_ONLY


def _set_trusted(model: M, fields: dict[str, Any], fields_set: Set[str]) -> M:
    """Fill a model from already-checked fields, as ``model_construct`` does."""
    object.__setattr__(model, "__dict__", fields)
    object.__setattr__(model, "__pydantic_fields_set__", set(fields_set))
    object.__setattr__(model, "__pydantic_extra__", None)
    object.__setattr__(model, "__pydantic_private__", None)
    return model


def _trusted_event(event_id: str, fields: dict[str, Any]) -> Event:
    """An ``Event`` of already-checked ``fields`` under ``event_id``, stamped with its time."""
    fields["id"] = event_id
    fields["ts"] = ms_to_datetime(stream_id_ms(event_id))
    return _set_trusted(Event.__new__(Event), fields, _ALL_EVENT_FIELDS)


def decode_event(
    event_id: str | bytes, raw: bytes | str | None, key: str = "", run_id: str = ""
) -> Event:
    """The stored event under ``event_id``; a record that cannot be decoded becomes an
    ``UNREADABLE`` placeholder (and a warning naming ``key``), never an exception."""
    if isinstance(event_id, bytes):
        event_id = event_id.decode()
    try:
        if raw is None:
            raise ValueError("the record has no event field")
        body = from_json(raw)
        if not isinstance(body, dict):
            raise ValueError(f"the record holds a JSON {type(body).__name__}, not an event")
        fields = {
            "kind": body["kind"],
            "run_id": body["run_id"],
            "flow": body["flow"],
            "step": body.get("step"),
            "data": body.get("data") or {},
            "meta": body.get("meta") or {},
        }
        event = _trusted_event(event_id, fields)  # trusted store contents: not re-validated
        if not _well_formed(event):
            raise ValueError("the record's fields do not have an event's types")
        return event
    except (ValueError, KeyError, TypeError) as exc:  # from_json raises ValueError
        return unreadable(event_id, key, run_id, exc)


def _well_formed(event: Event) -> bool:
    """The types readers rely on (a stored body was written valid; this catches records
    written by something else)."""
    return (
        type(event.kind) is str
        and type(event.run_id) is str
        and type(event.flow) is str
        and (event.step is None or type(event.step) is str)
        and type(event.data) is dict
        and type(event.meta) is dict
    )


def unreadable(event_id: str, key: str, run_id: str, error: BaseException | str) -> Event:
    """The placeholder a reader yields for a record it cannot decode."""
    reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    log.warning("skipping unreadable record %s in %s: %s", event_id, key or "a stream", reason)
    fields = {
        "kind": UNREADABLE,
        "run_id": run_id,
        "flow": "",
        "step": None,
        "data": {"key": key, "error": reason[:500]},
        "meta": {},
    }
    return _trusted_event(event_id, fields)


def event_from_json(raw: bytes | str) -> Event:
    """Parse an ``Event`` from its public JSON form (``Event.to_json``)."""
    try:
        return Event.model_validate_json(raw)
    except ValidationError as exc:
        raise InvalidEvent(f"not an event: {exc}") from exc
