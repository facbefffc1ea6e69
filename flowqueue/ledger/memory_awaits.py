"""The await transitions of the in-process ledger, with the Redis scripts' semantics."""

from __future__ import annotations

from collections import deque
from typing import Any

from pydantic_core import from_json, to_json

from flowqueue.awaits import AwaitOutcome, AwaitRecord, matches
from flowqueue.errors import PayloadTooLarge
from flowqueue.events import NewEvent, encode_body
from flowqueue.ledger.base import Cancelled, ResumeResult, Suspension, TriggerInfo
from flowqueue.ledger.memory_core import (
    ACTIVE,
    MemoryLedgerCore,
    RunBook,
    Waiter,
    after,
    filled,
    now_ms,
)
from flowqueue.timers import TimerSpec
from flowqueue.validation import check_json

LOOKBACK = 10_000


class MemoryAwaitOps(MemoryLedgerCore):
    def signal(self, name: str, payload: Any) -> tuple[str, list[str]]:
        check_json(payload, "payload")
        raw = to_json(payload)
        if len(raw) > self.settings.max_payload_bytes:
            raise PayloadTooLarge(
                f"payload of event {name!r} is {len(raw)} bytes encoded; the limit is "
                f"{self.settings.max_payload_bytes} (FLOWQUEUE_MAX_PAYLOAD_BYTES)."
            )
        with self._lock:
            return self._signal(name, raw, payload)

    def _signal(self, name: str, raw: bytes, payload: Any) -> tuple[str, list[str]]:
        signal_id = self._next_signal_id()
        recent = self._signals.setdefault(name, deque(maxlen=self.settings.signal_maxlen))
        recent.append((signal_id, raw))
        woken = []
        waiters = self._waiters.get(name, {})
        for field, waiter in list(waiters.items()):
            if matches(payload, waiter.match):
                del waiters[field]
                member = TimerSpec.model_validate(waiter.timer | {"signal": signal_id}).member()
                self._handed[member] = now_ms() + self._rehand_ms
                self._payloads[member] = raw
                woken.append(member)
        return signal_id, woken

    def suspend(self, s: Suspension, *, run_id: str, flow: str, step: str) -> AwaitOutcome:
        limit = self.settings.max_payload_bytes
        encode_body(s.event, limit)
        with self._lock:
            run = self._run(run_id)
            if run.ended or run.steps.get(step) != "running":
                return AwaitOutcome("gone")
            existing = run.awaits.get(s.key)
            if existing is not None:
                return AwaitOutcome("exists", existing)
            record = s.record
            if s.waiter:
                name = str(s.event.data["name"])
                since = run.since.get(step, "-")
                recent = list(self._signals.get(name, ()))[:LOOKBACK]
                for signal_id, raw in recent:
                    if after(signal_id, since) and matches(from_json(raw), s.match):
                        done = record.model_copy(
                            update={"state": "resumed", "result": raw.decode(), "timer": ""}
                        )
                        done = done.model_copy(update={"wkey": "", "waiter": ""})
                        run.awaits[s.key] = done
                        run.since[step] = f"({signal_id}"
                        self.store.append(s.event)
                        if s.resumed is not None:
                            self.store.append(filled(s.resumed, "result", from_json(raw)))
                        return AwaitOutcome("resolved", done)
                timer = from_json(s.waiter)
                waiter = Waiter(run_id, timer["timer"], timer.get("match"))
                self._waiters.setdefault(name, {})[record.waiter] = waiter
            if s.trigger:
                expiry = float("inf")
                self._triggers[self._trigger_id(record.tkey)] = (from_json(s.trigger), expiry)
            run.awaits[s.key] = record
            if record.timer:
                self._timers[record.timer] = s.due_ms
                run.timers[step] = record.timer
            run.steps[step], run.args[step] = "awaiting", to_json(s.arg)
            run.leases.pop(step, None)
            self.store.append(s.event)
            return AwaitOutcome("suspended")

    def record_once(self, key: str, record: AwaitRecord, event: NewEvent) -> AwaitRecord:
        encode_body(event, self.settings.max_payload_bytes)
        with self._lock:
            run = self._run(event.run_id)
            existing = run.awaits.get(key)
            if existing is not None:
                return existing
            run.awaits[key] = record
            self.store.append(event)
            return record

    def await_records(self, run_id: str, step: str) -> dict[str, AwaitRecord]:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return {}
            return {k: v for k, v in run.awaits.items() if k.startswith(f"{step}#")}

    def read_trigger(self, trigger_id: str) -> TriggerInfo | None:
        with self._lock:
            data = self._trigger(trigger_id)
        if data is None:
            return None
        return TriggerInfo(data["run_id"], data["flow"], data["step"], data["key"], data["state"])

    def resume(
        self, trigger_id: str, info: TriggerInfo, payload: Any, resumed: NewEvent, timer: str
    ) -> ResumeResult:
        raw = to_json(payload)
        encode_body(resumed, self.settings.max_payload_bytes)
        with self._lock:
            data = self._trigger(trigger_id)
            if data is None:
                return ResumeResult("unknown")
            if data["state"] != "pending":
                return ResumeResult("used", state=data["state"])
            run = self._run(info.run_id)
            if run.ended:
                return ResumeResult("ended")
            record = run.awaits.get(info.key)
            if record is None or record.state != "pending":
                return ResumeResult("used", state=record.state if record else "unknown")
            if record.timer:
                self._timers.pop(record.timer, None)
                self._handed.pop(record.timer, None)
            run.awaits[info.key] = record.model_copy(
                update={"state": "resumed", "result": raw.decode()}
            )
            self._settle_trigger(trigger_id, "resumed")
            now = now_ms()
            self._handed[timer] = now + self._rehand_ms
            run.since[info.step], run.timers[info.step] = str(now), timer
            self.store.append(resumed)
            arg = run.args.get(info.step)
            return ResumeResult("ok", arg=None if arg is None else from_json(arg))

    def cancel(self, run_id: str, flow: str, cancelled: NewEvent | None) -> Cancelled:
        if cancelled is not None:
            encode_body(cancelled, self.settings.max_payload_bytes)
        with self._lock:
            run = self._run(run_id)
            if cancelled is not None and run.ended:
                return Cancelled("ended", status=run.status)
            queued = self._release(run)
            if cancelled is not None:
                run.ended, run.status = True, "cancelled"
                self.store.append(cancelled)
            return Cancelled("cancelled", queued=queued)

    def _release(self, run: RunBook) -> list[str]:
        queued = []
        for step, status in list(run.steps.items()):
            if status in ACTIVE:
                run.steps[step] = "cancelled"
                if status == "queued":
                    queued.append(step)
        for timer in run.timers.values():
            self._drop_timer(timer)
        run.timers.clear()
        for key, record in list(run.awaits.items()):
            if record.state != "pending":
                continue
            run.awaits[key] = record.model_copy(update={"state": "cancelled"})
            if record.timer:
                self._drop_timer(record.timer)
            if record.wkey:
                self._waiters.get(self._waiter_name(record.wkey), {}).pop(record.waiter, None)
            if record.tkey:
                self._settle_trigger(self._trigger_id(record.tkey), "cancelled")
        return queued
