"""Human-readable timeline lines for a run's events (demo, CLI tail)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from flowqueue.model.events import TERMINAL_KINDS, UNREADABLE, Event, EventKind
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
    return " ".join(_detail(key, data[key]) for key in keys if data.get(key) is not None)


def _detail(key: str, value: Any) -> str:
    if key == "error" and isinstance(value, dict):
        value = f"{value.get('type', 'Error')}: {value.get('message', '')}"
    return f"{key}={_short(value)}"


def timeline(events: Iterable[Event]) -> Iterator[tuple[Event, str]]:
    """Each event with its line, ``+   12 ms  step.started     validate     attempt=1`` (ms
    since the first event), up to the run's terminal event."""
    origin: int | None = None
    for event in events:
        ms = stream_id_ms(event.id)
        origin = ms if origin is None else origin
        step = event.step or "-"
        yield event, f"+{ms - origin:>6} ms  {event.kind:<18} {step:<14} {describe(event)}".rstrip()
        if event.kind in TERMINAL_KINDS:
            return
