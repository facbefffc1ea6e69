"""The run ledger in process, beside ``MemoryEventStore``: the same transitions as the
Redis scripts, made atomic by one lock (for local development and eager-mode tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic_core import from_json, to_json

from flowqueue.events import Event, NewEvent, encode_body
from flowqueue.ids import stream_id_ms
from flowqueue.ledger.base import Candidate, Claim, Emitted, Outcome, StepFinish, StepStart
from flowqueue.ledger.memory_awaits import MemoryAwaitOps
from flowqueue.ledger.memory_core import ACTIVE, RunBook, filled, now_ms
from flowqueue.timers import TimerSpec
from flowqueue.validation import check_json


class MemoryRunLedger(MemoryAwaitOps):
    def _append_terminal(self, run: RunBook, event: NewEvent, status: str) -> Event:
        run.ended, run.status = True, status
        return self.store.append(event)

    def start_run(self, started: NewEvent, entry_steps: Sequence[str]) -> Event | None:
        encode_body(started, self.settings.max_payload_bytes)
        with self._lock:
            if started.run_id in self._runs or self.store.count(started.run_id):
                return None
            stored = self.store.append(started)
            run = self._runs[started.run_id] = RunBook(started_ms=stream_id_ms(stored.id))
            for step in entry_steps:
                run.steps[step] = "queued"
            return stored

    def begin_step(
        self,
        started: NewEvent,
        lease_ms: int,
        *,
        timer: str = "",
        on_claim: NewEvent | None = None,
    ) -> StepStart:
        step = started.step or ""
        with self._lock:
            run = self._run(started.run_id)
            status = run.steps.get(step)
            done = status in ("completed", "failed", "cancelled")
            if done or run.ended:
                if timer:  # a delivery that will never use its timer removes it
                    self._drop_timer(timer)
                return StepStart("done" if done else "ended")
            now = now_ms()
            if status == "running" and run.leases.get(step, 0) > now:
                return StepStart("busy", busy_ms=run.leases[step] - now)
            attempts = run.attempts.get(step, 0)
            attempt = attempts + 1
            if status in ("waiting", "awaiting"):
                if not timer:
                    return StepStart("wait")
                if not self._claim_timer(timer):
                    return StepStart("stale")
                resolved = self._resolve(run, step, status, timer, attempt, on_claim)
                if resolved is None:
                    return StepStart("stale")
                attempt = resolved
                run.timers.pop(step, None)
            run.since.setdefault(step, str(now))
            run.attempts[step] = attempt
            run.steps[step], run.leases[step] = "running", now + lease_ms
            self.store.append(filled(started, "attempt", attempt))
            return StepStart("run", attempt=attempt)

    def _resolve(
        self,
        run: RunBook,
        step: str,
        status: str,
        timer: str,
        attempt: int,
        on_claim: NewEvent | None,
    ) -> int | None:
        """The claimed timer's effect (begin_step.lua's branch); the attempt to run, or
        None if the timer lost to another resolution."""
        spec = TimerSpec.model_validate_json(timer)
        payload = self._payloads.pop(timer, None)
        if spec.kind == "retry":
            if status != "waiting":
                return None
            if on_claim is not None:
                self.store.append(filled(on_claim, "attempt", attempt))
            return attempt
        record = run.awaits.get(spec.key)
        if status != "awaiting" or record is None:
            return None
        if spec.kind == "resume":
            return attempt - 1 if record.state == "resumed" else None
        if record.state != "pending":
            return None
        if spec.kind == "timeout":
            record = record.model_copy(update={"state": "timeout"})
            if record.waiter:
                name = self._waiter_name(record.wkey)
                self._waiters.get(name, {}).pop(record.waiter, None)
            if record.tkey:
                self._settle_trigger(self._trigger_id(record.tkey), "timeout")
            run.since[step] = str(spec.due_ms)
        elif spec.kind == "wake":
            record = record.model_copy(update={"state": "resumed"})
            run.since[step] = str(spec.due_ms)
        elif spec.kind == "event" and payload is not None:
            record = record.model_copy(update={"state": "resumed", "result": payload.decode()})
            if record.timer:
                self._timers.pop(record.timer, None)
                self._handed.pop(record.timer, None)
            run.since[step] = f"({spec.signal}"
        else:
            return None
        run.awaits[spec.key] = record
        if on_claim is not None:
            value = None if payload is None else from_json(payload)
            self.store.append(filled(on_claim, "result", value))
        return attempt - 1  # a resumed step goes on with the same attempt

    def renew_lease(self, run_id: str, step: str, lease_ms: int) -> bool:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.steps.get(step) != "running":
                return False
            run.leases[step] = now_ms() + lease_ms
            return True

    def emit(
        self,
        event: NewEvent,
        payload: Any,
        candidates: Sequence[Candidate],
        *,
        republish: bool = False,
    ) -> Emitted:
        check_json(payload, "payload")
        encode_body(event, self.settings.max_payload_bytes)
        raw = to_json(payload)
        with self._lock:
            run = self._run(event.run_id)
            stored = self.store.append(event)
            _, woken = self._signal(str(event.data["name"]), raw, payload)
            claims: list[Claim] = []
            if run.ended:
                return Emitted(stored, claims, woken)
            run.emitted.setdefault(event.data["name"], raw)
            for candidate in candidates:
                if not all(name in run.emitted for name in candidate.subscribes):
                    continue
                status = run.steps.get(candidate.step)
                if status is None or (republish and status == "queued"):
                    run.steps[candidate.step] = "queued"
                    inputs = {n: from_json(run.emitted[n]) for n in candidate.subscribes}
                    claims.append(Claim(candidate.step, inputs))
            return Emitted(stored, claims, woken)

    def finish_step(
        self,
        event: NewEvent,
        outcome: Outcome,
        terminal: NewEvent | None,
        *,
        timer: str = "",
        due_ms: int = 0,
        arg: Any = None,
    ) -> StepFinish:
        limit = self.settings.max_payload_bytes
        encode_body(event, limit)
        if terminal is not None:
            encode_body(terminal, limit)
        step = event.step or ""
        with self._lock:
            run = self._run(event.run_id)
            if run.steps.get(step) in ("completed", "failed", "cancelled"):
                return StepFinish(duplicate=True)
            run.leases.pop(step, None)
            self.store.append(event)
            if outcome == "retry":
                if run.ended:
                    run.steps[step] = "failed"
                else:
                    run.steps[step], run.args[step] = "waiting", to_json(arg)
                    self._timers[timer] = due_ms
                    run.timers[step] = timer
                return StepFinish(duplicate=False)
            run.steps[step] = outcome
            if run.ended or terminal is None:
                return StepFinish(duplicate=False)
            if outcome == "failed":
                self._append_terminal(run, terminal, "failed")
                return StepFinish(duplicate=False, terminal=True)
            if any(status in ACTIVE for status in run.steps.values()):
                return StepFinish(duplicate=False)
            duration = max(0, now_ms() - run.started_ms)
            self._append_terminal(run, filled(terminal, "duration_ms", duration), "completed")
            return StepFinish(duplicate=False, terminal=True)

    def take_due(self, horizon_ms: int, limit: int, grace_ms: int) -> list[tuple[str, int]]:
        with self._lock:
            now = now_ms()
            due = sorted((at, t) for t, at in self._timers.items() if at <= now + horizon_ms)
            out = []
            for at, timer in due[:limit]:
                del self._timers[timer]
                self._handed[timer] = max(at, now) + grace_ms
                out.append((timer, at))
            for timer, again in list(self._handed.items()):
                if again <= now and len(out) < 2 * limit:
                    self._handed[timer] = now + grace_ms
                    out.append((timer, now))
            return out

    def step_arg(self, run_id: str, step: str) -> Any:
        with self._lock:
            raw = self._runs[run_id].args.get(step) if run_id in self._runs else None
            return None if raw is None else from_json(raw)

    def step_statuses(self, run_id: str) -> dict[str, str]:
        with self._lock:
            run = self._runs.get(run_id)
            return {} if run is None else dict(run.steps)
