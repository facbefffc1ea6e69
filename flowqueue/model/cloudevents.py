"""Events as CloudEvents 1.0 (JSON format, structured mode): the envelope other systems
read (Knative, Argo Events, EventBridge, any CloudEvents SDK).

One mapping, both ways, so what is exported reads back as the same event:

- ``id``: the event's id in its run's log (unique within its ``source``);
- ``source``: ``/flows/<flow>/runs/<run id>``, one source per run;
- ``type``: ``flowqueue.<kind>`` (``flowqueue.step.completed``);
- ``time``: when it was appended (RFC 3339, milliseconds, UTC);
- ``subject``: the step, when the event is a step's;
- ``datacontenttype``: ``application/json``, and ``data`` the event's data;
- extensions ``flow`` and ``runid`` (for routing on attributes alone, as a broker's
  trigger filters do), ``attempt`` (a step event's attempt), and ``flowqueuemeta`` (the
  event's meta as JSON text) when its meta holds more than the attempt.

The spec's attributes are few and fixed, so they are written here; the CloudEvents SDK
reads what this writes in the tests (``tests/test_cloudevents.py``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from flowqueue.errors import InvalidEvent
from flowqueue.model.events import Event
from flowqueue.model.ids import format_ts

SPECVERSION = "1.0"
TYPE_PREFIX = "flowqueue."
CONTENT_TYPE = "application/cloudevents+json"  # a structured-mode event
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
_SOURCE = re.compile(r"^/flows/(?P<flow>[^/]+)/runs/(?P<run_id>[^/]+)$")

Format = Literal["flowqueue", "cloudevents"]  # how the API writes events (``?format=``)


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in the JSON format; extension attributes are extra fields."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: str
    id: str
    source: str
    type: str
    time: str | None = None
    subject: str | None = None
    datacontenttype: str | None = None
    data: Any = None

    @model_serializer(mode="wrap")
    def _present(self, dump: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """An attribute without a value is left out, not written as null."""
        return {name: value for name, value in dump(self).items() if value is not None}


def source_of(flow: str, run_id: str) -> str:
    return f"/flows/{flow}/runs/{run_id}"


def to_cloudevent(event: Event) -> CloudEvent:
    """``event`` as a CloudEvent."""
    meta = event.meta
    attempt = meta.get("attempt")
    extensions: dict[str, Any] = {"flow": event.flow, "runid": event.run_id}
    if type(attempt) is int:
        extensions["attempt"] = attempt
    if set(meta) - ({"attempt"} if "attempt" in extensions else set()):
        extensions["flowqueuemeta"] = json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
    return CloudEvent(
        specversion=SPECVERSION,
        id=event.id,
        source=source_of(event.flow, event.run_id),
        type=TYPE_PREFIX + event.kind,
        time=format_ts(event.ts),
        subject=event.step,
        datacontenttype="application/json",
        data=event.data,
        **extensions,
    )


def encode_cloudevent(event: Event) -> bytes:
    """``event`` as a CloudEvent's JSON text (no attribute left null)."""
    return to_cloudevent(event).model_dump_json().encode()


def from_cloudevent(envelope: CloudEvent | Mapping[str, Any] | str | bytes) -> Event:
    """The event a CloudEvent written by ``to_cloudevent`` (or by another producer, in the
    same shape) carries. ``InvalidEvent`` says what does not fit."""
    try:
        if isinstance(envelope, str | bytes):
            cloud = CloudEvent.model_validate_json(envelope)
        elif isinstance(envelope, CloudEvent):
            cloud = envelope
        else:
            cloud = CloudEvent.model_validate(dict(envelope))
    except ValidationError as exc:
        raise InvalidEvent(f"not a CloudEvent in the JSON format: {_first(exc)}") from None
    if cloud.specversion != SPECVERSION:
        raise InvalidEvent(f"CloudEvents specversion {cloud.specversion!r}: only 1.0 is read.")
    if not cloud.type.startswith(TYPE_PREFIX):
        raise InvalidEvent(
            f"CloudEvent type {cloud.type!r} is not a flowqueue event's "
            f"({TYPE_PREFIX}<kind>, such as {TYPE_PREFIX}step.completed)."
        )
    extra = cloud.model_extra or {}
    where = _SOURCE.fullmatch(cloud.source)
    flow = extra.get("flow", where["flow"] if where else None)
    run_id = extra.get("runid", where["run_id"] if where else None)
    if flow is None or run_id is None:
        raise InvalidEvent(
            f"CloudEvent source {cloud.source!r} names no run: a flowqueue event's source "
            "is /flows/<flow>/runs/<run id> (or give the flow and runid extensions)."
        )
    if cloud.time is None:
        raise InvalidEvent("CloudEvent has no time: a flowqueue event's is when it was appended.")
    meta = _meta(extra)
    data = {} if cloud.data is None else cloud.data
    try:
        return Event(
            kind=cloud.type.removeprefix(TYPE_PREFIX),
            run_id=run_id,
            flow=flow,
            step=cloud.subject,
            data=data,
            meta=meta,
            id=cloud.id,
            ts=cloud.time,
        )
    except ValidationError as exc:  # a bad id or time
        raise InvalidEvent(f"CloudEvent does not carry a flowqueue event: {_first(exc)}") from None


def _meta(extra: Mapping[str, Any]) -> dict[str, Any]:
    raw = extra.get("flowqueuemeta")
    if raw is not None:
        try:
            meta = json.loads(raw) if isinstance(raw, str) else None
        except json.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict):
            raise InvalidEvent("CloudEvent extension flowqueuemeta must be a JSON object's text.")
        return meta
    attempt = extra.get("attempt")
    if isinstance(attempt, str) and attempt.isdecimal():  # a binary-mode header's text
        attempt = int(attempt)
    return {} if attempt is None else {"attempt": attempt}


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
