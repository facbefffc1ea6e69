"""The in-process ledger's state: per-run books and the cross-run timers, signals,
waiters and triggers, all guarded by one lock (each operation is one atomic step)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from flowqueue.awaits import AwaitRecord
from flowqueue.events import NewEvent
from flowqueue.ids import parse_stream_id
from flowqueue.keys import Keys
from flowqueue.store.memory import MemoryEventStore

ACTIVE = frozenset({"queued", "running", "waiting", "awaiting"})


@dataclass
class RunBook:
    started_ms: int
    ended: bool = False
    status: str = "running"
    steps: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    leases: dict[str, int] = field(default_factory=dict)
    emitted: dict[str, bytes] = field(default_factory=dict)
    args: dict[str, bytes] = field(default_factory=dict)  # inputs of steps waiting to go on
    timers: dict[str, str] = field(default_factory=dict)  # step -> its pending timer
    since: dict[str, str] = field(default_factory=dict)  # step -> where event waits look from
    awaits: dict[str, AwaitRecord] = field(default_factory=dict)


@dataclass
class Waiter:
    run_id: str
    timer: dict[str, Any]  # TimerSpec fields of its wake timer, less the signal
    match: dict[str, Any] | None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def filled(event: NewEvent, name: str, value: Any) -> NewEvent:
    """Replace the ``"$name"`` placeholders the Redis scripts fill in."""
    token = f"${name}"

    def fill(values: dict[str, Any]) -> dict[str, Any]:
        return {k: value if v == token else v for k, v in values.items()}

    return event.model_copy(update={"data": fill(event.data), "meta": fill(event.meta)})


def after(signal_id: str, since: str) -> bool:
    """Whether a signal id is within an XRANGE start (``-``, ``ms`` or ``(ms-seq``)."""
    if since == "-":
        return True
    if since.startswith("("):
        return parse_stream_id(signal_id) > parse_stream_id(since[1:])
    return parse_stream_id(signal_id) >= parse_stream_id(since)


class MemoryLedgerCore:
    def __init__(self, store: MemoryEventStore) -> None:
        self.store = store
        self.settings = store.settings
        self.keys = Keys(store.settings.key_prefix)  # records name keys as Redis would
        self._lock = threading.RLock()
        self._runs: dict[str, RunBook] = {}
        self._timers: dict[str, int] = {}  # timer -> due ms
        self._handed: dict[str, int] = {}  # timer -> when to hand it over again
        self._payloads: dict[str, bytes] = {}  # event-wake timer -> payload
        self._signals: dict[str, deque[tuple[str, bytes]]] = {}
        self._waiters: dict[str, dict[str, Waiter]] = {}  # name -> field -> waiter
        self._triggers: dict[str, tuple[dict[str, Any], float]] = {}  # id -> (data, expiry)
        self._last_signal = (0, 0)

    @property
    def _rehand_ms(self) -> int:
        return int(self.settings.timer_rehand_seconds * 1000)

    def _run(self, run_id: str) -> RunBook:
        return self._runs.setdefault(run_id, RunBook(started_ms=now_ms()))

    def _claim_timer(self, timer: str) -> bool:
        found = self._timers.pop(timer, None) is not None
        return (self._handed.pop(timer, None) is not None) or found

    def _drop_timer(self, timer: str) -> None:
        self._timers.pop(timer, None)
        self._handed.pop(timer, None)
        self._payloads.pop(timer, None)

    def _next_signal_id(self) -> str:
        ms, seq = now_ms(), 0
        if ms <= self._last_signal[0]:
            ms, seq = self._last_signal[0], self._last_signal[1] + 1
        self._last_signal = (ms, seq)
        return f"{ms}-{seq}"

    def _waiter_name(self, wkey: str) -> str:
        return wkey[len(self.keys.waiters("")) :]

    def _trigger_id(self, tkey: str) -> str:
        return tkey[len(self.keys.trigger("")) :]

    def _trigger(self, trigger_id: str) -> dict[str, Any] | None:
        found = self._triggers.get(trigger_id)
        if found is None:
            return None
        if found[1] <= time.monotonic():
            del self._triggers[trigger_id]
            return None
        return found[0]

    def _settle_trigger(self, trigger_id: str, state: str) -> None:
        data = self._trigger(trigger_id)
        if data is not None and data["state"] == "pending":
            expiry = time.monotonic() + self.settings.trigger_retention_seconds
            self._triggers[trigger_id] = (data | {"state": state}, expiry)
