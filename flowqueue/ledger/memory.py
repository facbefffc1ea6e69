"""The run ledger in process, beside ``MemoryEventStore``: the same transitions as the
Redis scripts, made atomic by one lock (for local development and eager-mode tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import from_json, to_json

from flowqueue.events import Event, NewEvent, encode_body
from flowqueue.ids import stream_id_ms
from flowqueue.ledger.base import Candidate, Claim, Outcome, StepFinish, StepStart
from flowqueue.store.memory import MemoryEventStore
from flowqueue.validation import check_json

_ACTIVE = frozenset({"queued", "running", "awaiting"})


@dataclass
class _RunLedger:
    started_ms: int
    ended: bool = False
    steps: dict[str, str] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    leases: dict[str, int] = field(default_factory=dict)
    emitted: dict[str, bytes] = field(default_factory=dict)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _filled(event: NewEvent, name: str, value: int) -> NewEvent:
    """Replace the ``"$name"`` placeholders the Redis script would fill in."""
    token = f"${name}"

    def fill(values: dict[str, Any]) -> dict[str, Any]:
        return {k: value if v == token else v for k, v in values.items()}

    return event.model_copy(update={"data": fill(event.data), "meta": fill(event.meta)})


class MemoryRunLedger:
    def __init__(self, store: MemoryEventStore) -> None:
        self.store = store
        self._lock = threading.RLock()
        self._runs: dict[str, _RunLedger] = {}

    def _run(self, run_id: str) -> _RunLedger:
        return self._runs.setdefault(run_id, _RunLedger(started_ms=_now_ms()))

    def _append_terminal(self, run: _RunLedger, event: NewEvent) -> Event:
        run.ended = True
        return self.store.append(event)

    def start_run(self, started: NewEvent, entry_steps: Sequence[str]) -> Event | None:
        encode_body(started, self.store.settings.max_payload_bytes)
        with self._lock:
            if started.run_id in self._runs or self.store.count(started.run_id):
                return None
            stored = self.store.append(started)
            run = self._runs[started.run_id] = _RunLedger(started_ms=stream_id_ms(stored.id))
            for step in entry_steps:
                run.steps[step] = "queued"
            return stored

    def begin_step(self, started: NewEvent, lease_ms: int) -> StepStart:
        step = started.step or ""
        with self._lock:
            run = self._run(started.run_id)
            status = run.steps.get(step)
            if status in ("completed", "failed"):
                return StepStart("done")
            if run.ended:
                return StepStart("ended")
            now = _now_ms()
            lease = run.leases.get(step, 0)
            if status == "running" and lease > now:
                return StepStart("busy", busy_ms=lease - now)
            attempt = run.attempts[step] = run.attempts.get(step, 0) + 1
            run.steps[step], run.leases[step] = "running", now + lease_ms
            self.store.append(_filled(started, "attempt", attempt))
            return StepStart("run", attempt=attempt)

    def renew_lease(self, run_id: str, step: str, lease_ms: int) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.steps.get(step) != "running":
                return False
            run.leases[step] = _now_ms() + lease_ms
            return True

    def emit(
        self,
        event: NewEvent,
        payload: Any,
        candidates: Sequence[Candidate],
        *,
        republish: bool = False,
    ) -> tuple[Event, list[Claim]]:
        check_json(payload, "payload")
        encode_body(event, self.store.settings.max_payload_bytes)
        with self._lock:
            run = self._run(event.run_id)
            stored = self.store.append(event)
            claims: list[Claim] = []
            if run.ended:
                return stored, claims
            run.emitted.setdefault(event.data["name"], to_json(payload))
            for candidate in candidates:
                if not all(name in run.emitted for name in candidate.subscribes):
                    continue
                status = run.steps.get(candidate.step)
                if status is None or (republish and status == "queued"):
                    run.steps[candidate.step] = "queued"
                    inputs = {n: from_json(run.emitted[n]) for n in candidate.subscribes}
                    claims.append(Claim(candidate.step, inputs))
            return stored, claims

    def finish_step(self, event: NewEvent, outcome: Outcome, terminal: NewEvent) -> StepFinish:
        limit = self.store.settings.max_payload_bytes
        encode_body(event, limit)
        encode_body(terminal, limit)
        step = event.step or ""
        with self._lock:
            run = self._run(event.run_id)
            if run.steps.get(step) in ("completed", "failed"):
                return StepFinish(duplicate=True)
            run.steps[step] = outcome
            run.leases.pop(step, None)
            self.store.append(event)
            if run.ended:
                return StepFinish(duplicate=False)
            if outcome == "failed":
                self._append_terminal(run, terminal)
                return StepFinish(duplicate=False, terminal=True)
            if any(status in _ACTIVE for status in run.steps.values()):
                return StepFinish(duplicate=False)
            duration = max(0, _now_ms() - run.started_ms)
            self._append_terminal(run, _filled(terminal, "duration_ms", duration))
            return StepFinish(duplicate=False, terminal=True)

    def step_statuses(self, run_id: str) -> dict[str, str]:
        with self._lock:
            run = self._runs.get(run_id)
            return {} if run is None else dict(run.steps)
