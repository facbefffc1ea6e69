"""The rules an event's fields must meet, checked in one pass.

Events are built on the hot path (every step writes several), so these checks are plain
loops that only build error text when something is wrong.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import BaseModel

from flowqueue.errors import InvalidEvent, InvalidIdentifier, NonJsonPayload, UnknownEventKind

# No braces (they delimit the Redis Cluster hash tag), whitespace or control characters.
# Also the rule for pydantic / OpenAPI (Rust regex); Python matches it with fullmatch, as
# "$" alone would also match before a trailing newline.
IDENT_PATTERN = r"^[A-Za-z0-9_.:\-]{1,128}$"
_IDENT = re.compile(IDENT_PATTERN)
EVENT_FIELDS = ("kind", "run_id", "flow", "step", "data", "meta")
_FIELD_SET = frozenset(EVENT_FIELDS)
_REQUIRED = ("kind", "run_id", "flow")
_MISSING: Any = object()

# The one limit of every way in (API, CLI, Python API, ctx.emit, state, results, logs).
# A value may nest MAX_JSON_DEPTH levels; an event's data and meta get ENVELOPE_DEPTH more
# for the fields that hold it (data.input, data.fields.<name>, ...). Stored, an event
# stays far below the 200 levels that every reader (pydantic-core's JSON parser, Lua's
# cjson, the browser) decodes, so anything accepted reads back everywhere.
MAX_JSON_DEPTH = 64
ENVELOPE_DEPTH = 2
INT_MIN = -(2**63)  # integers must fit in 64 bits (signed or unsigned): every JSON
INT_MAX = 2**64 - 1  # reader keeps them exact


def check_identifier(what: str, value: Any, error: type[InvalidEvent] = InvalidIdentifier) -> str:
    if not isinstance(value, str) or not _IDENT.fullmatch(value):
        raise error(
            f"{what} {shown(value)} is not valid: use 1-128 characters from letters, digits "
            "and '_.:-'."
        )
    return value


def shown(value: Any) -> str:
    """``repr(value)`` cut to 80 characters, for messages about bad input."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}...{text[-16:]}"


def check_json(value: Any, path: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ``NonJsonPayload`` naming the first value JSON cannot carry exactly, or the
    first place nested deeper than ``max_depth`` (a scalar is depth 0, ``[]`` depth 1)."""
    problem = _non_json(value, max_depth)
    if problem is not None:
        where, what = problem
        if len(where) > 80:  # a deep path: its start and end say enough
            where = f"{where[:40]}...{where[-30:]}"
        raise NonJsonPayload(f"{path}{where} {what}")


def _non_json(value: Any, room: int) -> tuple[str, str] | None:
    """(path below ``value``, description) of the first value that breaks the rules, or
    None. ``room`` is how many more levels of nesting ``value`` may open."""
    kind = type(value)
    if kind is dict or kind is list or isinstance(value, dict | list):
        return _non_json_in(value, room)
    if _plain(value) or value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):  # non-ASCII text, or a subclass such as StrEnum
        return None if _is_unicode(value) else ("", _SURROGATE)
    if isinstance(value, int):  # past the fast path: out of range, or an IntEnum
        return None if INT_MIN <= value <= INT_MAX else ("", _too_big(int(value)))
    if isinstance(value, float):  # non-finite, or a subclass such as numpy.float64
        if math.isfinite(value):
            return None
        return "", f"is {value!r}, which JSON cannot represent; send a finite number or null."
    return "", (
        f"is a {type(value).__name__}, which is not JSON; convert it to a string, number, "
        "bool, null, list or object first (e.g. datetime.isoformat())."
    )


def _non_json_in(value: dict[Any, Any] | list[Any], room: int) -> tuple[str, str] | None:
    """``_non_json`` of a container: its depth, keys and items."""
    if room <= 0:
        return "", (
            f"nests deeper than the limit of {MAX_JSON_DEPTH} levels; flatten it or store "
            "it elsewhere and send a reference."
        )
    if type(value) is list or isinstance(value, list):
        for index, item in enumerate(value):
            if not _plain(item) and (found := _non_json(item, room - 1)) is not None:
                return f"[{index}]{found[0]}", found[1]
        return None
    for key, item in value.items():
        if not isinstance(key, str):
            return "", (
                f"has key {key!r} of type {type(key).__name__}; JSON object keys must be strings."
            )
        if not (key.isascii() or _is_unicode(key)):
            return "", f"has a key that {_SURROGATE}"
        if not _plain(item) and (found := _non_json(item, room - 1)) is not None:
            return f".{key}{found[0]}", found[1]
    return None


def _plain(item: Any) -> bool:
    """A leaf of an exact built-in type that keeps the rules: the common case, checked
    without a call per leaf (events are built on the hot path)."""
    kind = type(item)
    if kind is str:
        return bool(item.isascii())
    if kind is int:
        return bool(INT_MIN <= item <= INT_MAX)
    return kind is bool or item is None or (kind is float and math.isfinite(item))


_SURROGATE = (
    "holds a lone surrogate (such as \\ud800), which is not Unicode text; send valid "
    "UTF-8 (pair the surrogates, or encode binary data as base64)."
)


def _is_unicode(text: str) -> bool:
    """False for a string with a lone surrogate (UTF-8 cannot encode it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _too_big(value: int) -> str:
    digits = str(value) if value.bit_length() <= 128 else f"of {value.bit_length()} bits"
    return f"is the integer {digits}, outside 64 bits; send it as a string."


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
    check_json(value, name, MAX_JSON_DEPTH + ENVELOPE_DEPTH)
    return value


def to_jsonable(value: Any, what: str) -> Any:
    """A step's result or payload as JSON data (pydantic models are dumped)."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    check_json(value, what)
    return value
