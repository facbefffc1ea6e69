"""The rules an event's fields must meet, checked in one pass.

Events are built on the hot path (every step writes several), so these checks are plain
loops that only build error text when something is wrong.
"""

from __future__ import annotations

import math
import re
from typing import Any

from flowqueue.errors import InvalidEvent, InvalidIdentifier, NonJsonPayload, UnknownEventKind

# No braces (they delimit the Redis Cluster hash tag), whitespace or control characters.
_IDENT = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
_JSON_SCALARS = frozenset({str, int, bool, type(None)})
EVENT_FIELDS = ("kind", "run_id", "flow", "step", "data", "meta")
_FIELD_SET = frozenset(EVENT_FIELDS)
_REQUIRED = ("kind", "run_id", "flow")
_MISSING: Any = object()


def check_identifier(what: str, value: Any) -> str:
    if not isinstance(value, str) or not _IDENT.match(value):
        raise InvalidIdentifier(
            f"{what} {value!r} is not valid: use 1-128 characters from letters, digits and '_.:-'."
        )
    return value


def check_json(value: Any, path: str) -> None:
    """Raise ``NonJsonPayload`` naming the first value JSON cannot represent exactly."""
    problem = _non_json(value)
    if problem is not None:
        where, what = problem
        raise NonJsonPayload(f"{path}{where} {what}")


def _non_json(value: Any) -> tuple[str, str] | None:
    """(path below ``value``, description) of the first non-JSON value, or None."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        return None
    if kind is dict or isinstance(value, dict):
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                return "", (
                    f"has key {key!r} of type {type(key).__name__}; JSON object keys must be "
                    "strings."
                )
            if type(item) not in _JSON_SCALARS and (found := _non_json(item)) is not None:
                return f".{key}{found[0]}", found[1]
        return None
    if kind is list or isinstance(value, list):
        for index, item in enumerate(value):
            if type(item) not in _JSON_SCALARS and (found := _non_json(item)) is not None:
                return f"[{index}]{found[0]}", found[1]
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return "", f"is {value!r}, which JSON cannot represent; send a finite number or null."
    if isinstance(value, str | int):  # subclasses such as StrEnum / IntEnum
        return None
    return "", (
        f"is a {type(value).__name__}, which is not JSON; convert it to a string, number, "
        "bool, null, list or object first (e.g. datetime.isoformat())."
    )


def check_event_fields(values: dict[str, Any], known_kinds: frozenset[str]) -> dict[str, Any]:
    """Every rule of a new event; returns the complete field dict (defaults filled in)."""
    if not values.keys() <= _FIELD_SET:
        unknown = sorted(set(values) - _FIELD_SET)
        raise InvalidEvent(
            f"unknown event field(s) {', '.join(unknown)}; an event has only "
            f"{', '.join(EVENT_FIELDS)}."
        )
    try:
        kind, run_id, flow = values["kind"], values["run_id"], values["flow"]
    except KeyError:
        missing = [name for name in _REQUIRED if name not in values]
        raise InvalidEvent(f"event is missing {', '.join(missing)}.") from None
    if not isinstance(kind, str) or kind not in known_kinds:
        raise UnknownEventKind(
            f"unknown event kind {kind!r}; use one of: {', '.join(sorted(known_kinds))}."
        )
    step = values.get("step")
    data = values.get("data", _MISSING)
    meta = values.get("meta", _MISSING)
    return {
        "kind": kind if type(kind) is str else str(kind),  # StrEnum -> its plain value
        "run_id": check_identifier("run id", run_id),
        "flow": check_identifier("flow name", flow),
        "step": None if step is None else check_identifier("step name", step),
        "data": {} if data is _MISSING else _json_object("data", data),
        "meta": {} if meta is _MISSING else _json_object("meta", meta),
    }


def _json_object(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise NonJsonPayload(
            f"event {name} must be a JSON object (a dict), got {type(value).__name__}."
        )
    check_json(value, name)
    return value
