"""The awaits of one execution of a step: numbered in call order, replayed from the
coordinator's records when the step runs again, registered (and the step suspended) when new.

While an execution is still replaying (it has not yet passed the last await recorded
before), its emits, log lines and state writes were already made by an earlier
execution, so they are not made again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flowqueue.backend.coordinator import Suspension
from flowqueue.model.awaits import (
    AwaitKind,
    AwaitRecord,
    Match,
    Suspended,
    check_match,
    check_same,
    check_signal_name,
    encode,
    iso_of_ms,
    new_trigger_id,
    replayed,
)
from flowqueue.model.events import Event, EventKind, NewEvent
from flowqueue.model.header import StepHeader
from flowqueue.model.statuses import RESULT_SLOT
from flowqueue.model.timers import TimerSpec, now_ms
from flowqueue.model.validation import to_jsonable
from flowqueue.runtime._connections import Connections

log = logging.getLogger(__name__)
T = TypeVar("T")


class StepAwaits:
    def __init__(
        self,
        connections: Connections,
        header: StepHeader,
        attempt: int,
        arg: Any,
        *,
        resumed: bool,
    ) -> None:
        self._backend = connections
        self._header = header
        self._attempt = attempt
        self._arg = arg
        self._seq = 0
        # Only a resumed or repeated execution can have records: skip the read otherwise.
        self._records = (
            connections.coordinator.await_records(header.run_id, header.step) if resumed else {}
        )
        self._last_recorded = max((_seq_of(k) for k in self._records), default=0)
        self._emits: list[Event] | None = None
        self._emit_seq = 0

    @property
    def replaying(self) -> bool:
        """True until this execution passes the last await recorded before."""
        return self._seq < self._last_recorded

    # -- the awaits ------------------------------------------------------------------

    def sleep_until(self, due_ms: int) -> None:
        key, record = self._next("time", "sleep")
        if record is not None:
            replayed(record, key)
            return
        timer = self._timer("wake", key, due_ms=due_ms)
        pending = AwaitRecord(kind="time", name="sleep", state="pending", timer=timer)
        event = self._event(EventKind.STEP_AWAIT_TIME, key=key, until=iso_of_ms(due_ms))
        self._suspend(Suspension(key, pending, event, self._arg, due_ms=due_ms))

    def wait_for_event(self, name: str, match: Match | None, timeout_ms: int | None) -> Any:
        check_signal_name(name)
        match = check_match(match)
        key, record = self._next("event", name)
        if record is not None:
            return replayed(record, key)
        due_ms, timer = self._timeout(key, timeout_ms, name=name)
        wkey, waiter = self._backend.keys.waiters(name), f"{self._header.run_id}|{key}"
        pending = AwaitRecord(
            kind="event", name=name, state="pending", timer=timer, wkey=wkey, waiter=waiter
        )
        wake = {"kind": "event"} | self._where(key)
        return self._suspend(
            Suspension(
                key,
                pending,
                self._awaiting(EventKind.STEP_AWAIT_EVENT, key, due_ms, name=name, match=match),
                self._arg,
                due_ms=due_ms,
                waiter=encode({"match": match, "timer": wake}, "waiter"),
                match=match,
                resumed=self._event(EventKind.STEP_RESUMED, key=key, result=RESULT_SLOT),
            )
        )

    def wait_for_trigger(
        self,
        timeout_ms: int | None,
        info: dict[str, Any] | None,
        on_trigger: Callable[[str], None] | None,
    ) -> Any:
        key, record = self._next("trigger", "trigger")
        if record is not None:
            return replayed(record, key)
        trigger_id = new_trigger_id()
        due_ms, timer = self._timeout(key, timeout_ms, trigger=trigger_id)
        tkey = self._backend.keys.trigger(trigger_id)
        pending = AwaitRecord(
            kind="trigger", name="trigger", state="pending", timer=timer, tkey=tkey
        )
        data = {"trigger_id": trigger_id, "info": info}
        event = self._awaiting(EventKind.STEP_AWAIT_TRIGGER, key, due_ms, **data)
        trigger = encode(self._where(key) | {"state": "pending"}, "trigger")
        suspension = Suspension(key, pending, event, self._arg, due_ms=due_ms, trigger=trigger)
        return self._suspend(suspension, lambda: on_trigger(trigger_id) if on_trigger else None)

    def once(self, name: str, fn: Callable[[], T]) -> Any:
        key, record = self._next("once", name)
        if record is not None:
            return record.value()
        result = to_jsonable(fn(), f"result of ctx.once({name!r})")
        done = AwaitRecord(kind="once", name=name, state="done", result=encode(result, name))
        event = self._event(EventKind.STEP_ONCE, key=key, name=name, result=result)
        return self._backend.coordinator.record_once(key, done, event).value()

    # -- replayed effects ------------------------------------------------------------

    def replayed_emit(self, name: str) -> Event | None:
        """While replaying, the emit event the earlier execution made for this call."""
        if not self.replaying:
            return None
        if self._emits is None:
            header = self._header
            self._emits = [
                e
                for e in self._backend.store.read(header.run_id)
                if e.kind == EventKind.EMIT and e.step == header.step
            ]
        index, self._emit_seq = self._emit_seq, self._emit_seq + 1
        if index < len(self._emits) and self._emits[index].data.get("name") == name:
            return self._emits[index]
        return None

    # -- helpers ---------------------------------------------------------------------

    def _next(self, kind: AwaitKind, name: str) -> tuple[str, AwaitRecord | None]:
        self._seq += 1
        key = f"{self._header.step}#{self._seq}"
        record = self._records.get(key)
        if record is not None:
            check_same(key, record, kind, name)
        return key, record

    def _timer(self, kind: str, key: str, **fields: Any) -> str:
        return TimerSpec.model_validate({"kind": kind} | self._where(key) | fields).member()

    def _timeout(self, key: str, timeout_ms: int | None, **fields: Any) -> tuple[int, str]:
        if timeout_ms is None:
            return 0, ""
        due_ms = now_ms() + timeout_ms
        return due_ms, self._timer("timeout", key, due_ms=due_ms, **fields)

    def _where(self, key: str) -> dict[str, str]:
        header = self._header
        return {"run_id": header.run_id, "flow": header.flow, "step": header.step, "key": key}

    def _awaiting(self, kind: str, key: str, due_ms: int, **data: Any) -> NewEvent:
        """A step.await.* event; ``timeout_at`` when the await has a timeout."""
        if due_ms:
            data["timeout_at"] = iso_of_ms(due_ms)
        return self._event(kind, key=key, **data)

    def _event(self, kind: str, **data: Any) -> NewEvent:
        return self._header.event(kind, self._attempt, **data)

    def _suspend(self, s: Suspension, on_suspended: Callable[[], Any] | None = None) -> Any:
        header = self._header
        outcome = self._backend.coordinator.suspend(
            s, run_id=header.run_id, flow=header.flow, step=header.step
        )
        if outcome.state in ("resolved", "exists") and outcome.record is not None:
            return replayed(outcome.record, s.key)
        if outcome.state == "suspended" and on_suspended is not None:
            try:
                on_suspended()
            except Exception:  # the await is recorded; a failing callback must not undo it
                log.exception("on_trigger callback of %s/%s failed", header.run_id, s.key)
        raise Suspended


def _seq_of(key: str) -> int:
    tail = key.rpartition("#")[2]
    return int(tail) if tail.isdigit() else 0
