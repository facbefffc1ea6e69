"""The await transitions of the Redis coordinator: suspend, once, trigger resume, cancel and
signals from outside a run (one Lua script each)."""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import to_json

from flowqueue.backend.coordinator import Cancelled, ResumeResult, Suspension, TriggerInfo
from flowqueue.backend.redis._coordinator_core import RedisCoordinatorCore
from flowqueue.backend.redis.scripts import LuaScript
from flowqueue.errors import PayloadTooLarge
from flowqueue.model.awaits import AwaitOutcome, AwaitRecord
from flowqueue.model.events import NewEvent
from flowqueue.model.validation import check_json

SUSPEND = LuaScript.per_run("suspend.lua", "signal_lib.lua")
ONCE = LuaScript.per_run("once.lua")
RESUME = LuaScript.per_run("resume.lua", "trigger_lib.lua")
CANCEL = LuaScript.per_run("cancel.lua", "trigger_lib.lua")
SIGNAL = LuaScript.load("signal.lua", "signal_lib.lua")
LOOKBACK = 10_000  # emissions a new event wait looks through at most


class RedisAwaitOps(RedisCoordinatorCore):
    def signal(self, name: str, payload: Any) -> tuple[str, list[str]]:
        check_json(payload, "payload")
        raw = to_json(payload)
        self._check_size(name, raw)
        keys = self.keys
        settings = self.settings
        reply = SIGNAL.run(
            self.client,
            [keys.signals(name), keys.waiters(name), keys.timers_handed, keys.timer_payloads],
            [raw, settings.signal_maxlen, self._signal_ttl_ms, self._rehand_ms],
        )
        return reply[0].decode(), [member.decode() for member in reply[1]]

    def suspend(self, s: Suspension, *, run_id: str, flow: str, step: str) -> AwaitOutcome:
        keys = self.keys
        name = s.event.data.get("name") or ""
        waiters = keys.waiters(name) if s.waiter else keys.timers
        trigger = s.record.tkey or keys.timers
        signals = keys.signals(name) if s.waiter else keys.timers
        call_keys, argv = self._call(run_id, flow, waiters, trigger, signals)
        resumed = self._body(s.resumed) if s.resumed is not None else b""
        argv += [step, s.key, s.record.encoded(), self._body(s.event), s.due_ms, to_json(s.arg)]
        argv += [s.waiter, to_json(s.match), resumed, s.trigger, LOOKBACK]
        reply = SUSPEND.run(self.client, call_keys, argv)
        state = reply[0].decode()
        record = AwaitRecord.model_validate_json(reply[1]) if len(reply) > 1 else None
        return AwaitOutcome(state, record)

    def record_once(self, key: str, record: AwaitRecord, event: NewEvent) -> AwaitRecord:
        call_keys, argv = self._call(event.run_id, event.flow)
        argv += [key, record.encoded(), self._body(event)]
        return AwaitRecord.model_validate_json(ONCE.run(self.client, call_keys, argv))

    def await_records(self, run_id: str, step: str) -> dict[str, AwaitRecord]:
        raw: dict[bytes, bytes] = self.client.hgetall(self.keys.run_awaits(run_id))  # type: ignore[assignment]
        prefix = f"{step}#"
        return {
            key: AwaitRecord.model_validate_json(value)
            for field, value in raw.items()
            if (key := field.decode()).startswith(prefix)
        }

    def read_trigger(self, trigger_id: str) -> TriggerInfo | None:
        raw = self.client.get(self.keys.trigger(trigger_id))
        if raw is None:
            return None
        data = json.loads(raw)
        return TriggerInfo(data["run_id"], data["flow"], data["step"], data["key"], data["state"])

    def resume(
        self, trigger_id: str, info: TriggerInfo, payload: Any, resumed: NewEvent, timer: str
    ) -> ResumeResult:
        raw = to_json(payload)
        body = self._body(resumed)  # checks the size before anything is written
        call_keys, argv = self._call(info.run_id, info.flow, self.keys.trigger(trigger_id))
        argv += [info.step, info.key, raw, body, timer, self._rehand_ms, self._trigger_retention_ms]
        reply = RESUME.run(self.client, call_keys, argv)
        outcome = reply[0].decode()
        if outcome == "ok":
            return ResumeResult("ok", arg=json.loads(reply[1]))
        return ResumeResult(outcome, state=reply[1].decode() if len(reply) > 1 else "")

    def cancel(self, run_id: str, flow: str, cancelled: NewEvent | None) -> Cancelled:
        body = self._body(cancelled) if cancelled is not None else b""
        while True:
            # Pass the waiters hashes and triggers of pending awaits as KEYS; an await
            # registered meanwhile makes the script ask again.
            extra = self._pending_await_keys(run_id)
            call_keys, argv = self._call(run_id, flow, *extra)
            reply = CANCEL.run(self.client, call_keys, [*argv, body, self._trigger_retention_ms])
            outcome = reply[0].decode()
            if outcome == "ended":
                return Cancelled("ended", status=reply[1].decode())
            if outcome == "ok":
                return Cancelled("cancelled", queued=[step.decode() for step in reply[1:]])

    def _pending_await_keys(self, run_id: str) -> list[str]:
        raw: dict[bytes, bytes] = self.client.hgetall(self.keys.run_awaits(run_id))  # type: ignore[assignment]
        found: set[str] = set()
        for value in raw.values():
            record = AwaitRecord.model_validate_json(value)
            if record.state == "pending":
                found.update(k for k in (record.wkey, record.tkey) if k)
        return sorted(found)

    @property
    def _signal_ttl_ms(self) -> int:
        return int(self.settings.signal_retention_seconds * 1000)

    def _check_size(self, name: str, raw: bytes) -> None:
        if len(raw) > self.settings.max_payload_bytes:
            raise PayloadTooLarge(
                f"payload of event {name!r} is {len(raw)} bytes encoded; the limit is "
                f"{self.settings.max_payload_bytes} (FLOWQUEUE_MAX_PAYLOAD_BYTES). Store large "
                "data elsewhere and send a reference."
            )
