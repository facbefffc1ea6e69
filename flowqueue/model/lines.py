"""Human-readable timeline lines for a run's events (demo, CLI tail)."""

from __future__ import annotations

from typing import Any

from flowqueue.model.events import UNREADABLE, Event, EventKind
from flowqueue.model.ids import stream_id_ms

_DETAIL_KEYS: dict[str, tuple[str, ...]] = {
    UNREADABLE: ("key", "error"),
    EventKind.STEP_STARTED: ("attempt", "worker"),
    EventKind.STEP_COMPLETED: ("result", "duration_ms"),
    EventKind.STEP_FAILED: ("error", "will_retry", "next_retry_at"),
    EventKind.STEP_RETRY: ("attempt", "delay_s"),
    EventKind.STEP_AWAIT_TIME: ("until",),
    EventKind.STEP_AWAIT_EVENT: ("name", "match", "timeout_at"),
    EventKind.STEP_AWAIT_TRIGGER: ("trigger_id", "timeout_at"),
    EventKind.STEP_RESUMED: ("result",),
    EventKind.STEP_AWAIT_TIMEOUT: ("key",),
    EventKind.STEP_ONCE: ("name", "result"),
    EventKind.FLOW_STARTED: ("input",),
    EventKind.FLOW_COMPLETED: ("result", "duration_ms"),
    EventKind.FLOW_FAILED: ("error",),
    EventKind.FLOW_CANCELLED: ("reason",),
    EventKind.STATE_DELETE: ("key",),
}


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe(event: Event) -> str:
    data = event.data
    if event.kind == EventKind.LOG:
        fields = " ".join(f"{k}={_short(v, 30)}" for k, v in (data.get("fields") or {}).items())
        return f"[{data.get('level', 'info')}] {data.get('msg', '')} {fields}".rstrip()
    if event.kind == EventKind.EMIT:
        return f"{data.get('name')} {_short(data.get('payload'))}"
    if event.kind == EventKind.STATE_SET:
        return f"{data.get('key')} = {_short(data.get('value'))}"
    keys = _DETAIL_KEYS.get(event.kind, ())
    return " ".join(
        f"{k}={_error_text(data[k]) if k == 'error' else _short(data[k])}"
        for k in keys
        if data.get(k) is not None
    )


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        return _short(f"{error.get('type', 'Error')}: {error.get('message', '')}")
    return _short(error)


def format_line(event: Event, origin_ms: int | None) -> str:
    """``+   12 ms  step.started     validate     attempt=1``."""
    offset = 0 if origin_ms is None else stream_id_ms(event.id) - origin_ms
    step = event.step or "-"
    return f"+{offset:>6} ms  {event.kind:<18} {step:<14} {describe(event)}".rstrip()
