"""The run coordinator on Redis: one Lua script per transition, one round trip each; this
module builds each call by name (``scripts.py`` declares them) and decodes the reply."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic_core import to_json

from flowqueue.backend.coordinator import (
    BrokerWrite,
    Cancelled,
    Candidate,
    Claim,
    Emitted,
    ResumeResult,
    StepFinish,
    StepStart,
    Suspension,
    TriggerInfo,
)
from flowqueue.backend.redis import scripts
from flowqueue.backend.redis.store import RedisEventStore, gone
from flowqueue.errors import PayloadTooLarge
from flowqueue.model.awaits import AwaitOutcome, AwaitRecord
from flowqueue.model.events import Event, NewEvent, encode_body
from flowqueue.model.header import StartNote
from flowqueue.model.statuses import Outcome
from flowqueue.model.timers import TimerSpec
from flowqueue.model.validation import check_json


@dataclass(frozen=True)
class Retried:
    """What ``retry_run`` did: ``ok`` (the run runs again; ``steps`` were queued anew),
    ``gone`` (expired or never started), ``not_failed`` (its ``status``) or ``busy`` (a
    step the failure cancelled still holds its lease for ``busy_ms``)."""

    outcome: Literal["ok", "gone", "not_failed", "busy"]
    event: Event | None = None
    steps: list[str] = field(default_factory=list)
    status: str = ""
    busy_ms: int = 0


class RedisRunCoordinator:
    def __init__(self, store: RedisEventStore) -> None:
        self.client = store.client
        self.settings = settings = store.settings
        self._cmd = store.commands
        self._names = store.names
        self.keys = keys = self._cmd.keys
        # What the settings fix, by name (each script picks the names it declares).
        self._fixed: dict[str, Any] = {
            "timers": keys.timers,
            "handed": keys.timers_handed,
            "payloads": keys.timer_payloads,
            "grace_ms": int(settings.timer_rehand_seconds * 1000),
            "retention_ms": int(settings.trigger_retention_seconds * 1000),
            "maxlen": settings.signal_maxlen,  # of a signal stream, and how long it is kept
            "ttl_ms": int(settings.signal_retention_seconds * 1000),
        }

    def _run(self, run_id: str, flow: str, **named: Any) -> dict[str, Any]:
        """``named`` and every name of the run the per-run scripts take."""
        return self._names.run(run_id, flow) | self._fixed | named

    def _body(self, event: NewEvent | None) -> bytes:
        return b"" if event is None else encode_body(event, self._cmd.max_payload)

    def start_run(
        self, started: NewEvent, entry_steps: Sequence[str], sends: Sequence[BrokerWrite] = ()
    ) -> Event | None:
        """Append flow.started and queue the entry steps, making ``sends`` (their
        messages' broker writes) in the same call; None if the run id exists (nothing
        is sent)."""
        named = self._run(started.run_id, started.flow, started=self._body(started))
        named["sends"] = to_json(sends)
        reply = scripts.START_RUN.run(self.client, **named, entry=entry_steps)
        return None if reply[0] == b"exists" else Event.stamped(started, reply[1].decode())

    def begin_step(
        self,
        started: NewEvent,
        lease_ms: int,
        *,
        timer: str = "",
        on_claim: NewEvent | None = None,
        start: StartNote | None = None,
    ) -> StepStart:
        """Claim a delivery of ``started.step``; appends step.started when it runs.

        ``started.data["attempt"]`` / ``meta["attempt"]`` hold ``"$attempt"``; the coordinator
        writes the real attempt number there. A step waiting for a retry or awaiting
        starts only for the delivery whose ``timer`` it claims, which also appends
        ``on_claim`` (step.retry with "$attempt"; step.resumed with "$result", filled with
        the waking event's payload; step.await.timeout) and resolves the await. An entry
        step's ``start`` is recorded first if its run has not started yet.
        """
        spec = TimerSpec.model_validate_json(timer) if timer else None
        # Only a timeout's claim needs these: its event wait's waiters, its trigger.
        waiters = self.keys.waiters(spec.name) if spec and spec.name else None
        trigger = self.keys.trigger(spec.trigger) if spec and spec.trigger else None
        named = self._run(started.run_id, started.flow, waiters=waiters, trigger=trigger)
        named.update(step=started.step, lease_ms=lease_ms, timer=timer, started=self._body(started))
        named.update(on_claim=self._body(on_claim), claim_kind=on_claim.kind if on_claim else "")
        if start is None:
            named.update(start="", entries="[]", made_ms=0)
        else:
            named.update(start=start.body, entries=to_json(start.entries), made_ms=start.made_ms)
        return _step_start(scripts.BEGIN_STEP.run(self.client, **named))

    def claim_finish(
        self, started: NewEvent, lease_ms: int, completed: NewEvent, terminal: NewEvent
    ) -> tuple[StepStart, StepFinish | None]:
        """A first delivery's deferred claim (``begin_step`` with no timer, for attempt 1)
        and its completion (``finish_step``) in one call. The finish is None when the
        claim does not run (``again``: the step has had an attempt); nothing is written."""
        named = self._run(started.run_id, started.flow, waiters=None, trigger=None)
        named.update(step=started.step, lease_ms=lease_ms, started=self._body(started))
        named.update(timer="", on_claim=b"", claim_kind="")
        named.update(outcome="completed", event=self._body(completed), kind=completed.kind)
        named.update(terminal=self._body(terminal), due_ms=0, arg="null", expect="")
        reply = scripts.CLAIM_FINISH.run(self.client, **named)
        start = _step_start(reply)
        if start.decision != "run":
            return start, None
        return start, _step_finish(reply[2:])

    def renew_lease(self, run_id: str, step: str, lease_ms: int) -> bool:
        steps = self.keys.run_steps(run_id)
        return bool(scripts.RENEW_LEASE.run(self.client, steps=steps, step=step, lease_ms=lease_ms))

    def emit(
        self,
        event: NewEvent,
        payload: Any,
        candidates: Sequence[Candidate],
        *,
        republish: bool = False,
        sends: Mapping[str, Sequence[BrokerWrite]] | None = None,
    ) -> Emitted:
        """Append an emit event, claim every candidate it makes ready (once), and wake the
        event waits it matches in any run. A claimed candidate with ``sends`` (its
        message's broker writes) is sent in the same call (``Claim.sent``)."""
        emitted = self._emit(event, payload, candidates, republish, sends, None, 0)
        assert isinstance(emitted, Emitted)  # without a claim, the emit is written
        return emitted

    def claim_emit(
        self,
        started: NewEvent,
        lease_ms: int,
        event: NewEvent,
        payload: Any,
        candidates: Sequence[Candidate],
        sends: Mapping[str, Sequence[BrokerWrite]] | None = None,
    ) -> Emitted | StepStart:
        """``emit`` with the emitter's deferred claim (``started``, step.started), made
        first in the same call; when it does not run, its ``StepStart``, and nothing is
        written."""
        return self._emit(event, payload, candidates, False, sends, started, lease_ms)

    def _emit(
        self,
        event: NewEvent,
        payload: Any,
        candidates: Sequence[Candidate],
        republish: bool,
        sends: Mapping[str, Sequence[BrokerWrite]] | None,
        started: NewEvent | None,
        lease_ms: int,
    ) -> Emitted | StepStart:
        check_json(payload, "payload")
        name = event.data["name"]
        named = self._run(event.run_id, event.flow, name=name, event=self._body(event))
        named.update(signals=self.keys.signals(name), waiters=self.keys.waiters(name))
        named.update(payload=to_json(payload), republish=int(republish))
        named["candidates"] = to_json([[c.step, list(c.subscribes)] for c in candidates])
        named["sends"] = to_json(sends or {})
        named.update(step=event.step or "", lease_ms=lease_ms, started=self._body(started))
        named.update(on_claim=b"", claim_kind="", trigger=None)
        reply = scripts.EMIT.run(self.client, **named)
        if reply[0] == b"gone":
            raise gone(event.run_id, event.flow)
        if reply[0] == b"claim":
            return _step_start(reply[1:])
        claims = []
        for claimed in reply[2:]:
            step, payloads = claimed[0].decode(), claimed[2:]
            if claimed[1]:
                claims.append(Claim(step, sent=True))
                continue
            by_name = next(c for c in candidates if c.step == step).subscribes
            inputs = {name: json.loads(p) for name, p in zip(by_name, payloads, strict=True)}
            claims.append(Claim(step, inputs))
        woken = [member.decode() for member in reply[1]]
        return Emitted(Event.stamped(event, reply[0].decode()), claims, woken)

    def signal(self, name: str, payload: Any) -> tuple[str, list[str]]:
        """An event from outside any run: (its signal id, the wake timers it set)."""
        check_json(payload, "payload")
        raw = to_json(payload)
        if len(raw) > self.settings.max_payload_bytes:
            raise PayloadTooLarge(
                f"payload of event {name!r} is {len(raw)} bytes encoded; the limit is "
                f"{self.settings.max_payload_bytes} (FLOWQUEUE_MAX_PAYLOAD_BYTES). Store large "
                "data elsewhere and send a reference."
            )
        names = {"signals": self.keys.signals(name), "waiters": self.keys.waiters(name)}
        reply = scripts.SIGNAL.run(self.client, **self._fixed, **names, payload=raw)
        return reply[0].decode(), [member.decode() for member in reply[1]]

    def suspend(self, s: Suspension, *, run_id: str, flow: str, step: str) -> AwaitOutcome:
        """Record a pending await, park the step as awaiting and set its timer, waiter or
        trigger; an event wait first looks through emissions since the step began waiting."""
        name = s.event.data.get("name") or ""
        named = self._run(run_id, flow, step=step, key=s.key, record=s.record.encoded())
        named.update(event=self._body(s.event), kind=s.event.kind, due_ms=s.due_ms)
        named.update(arg=to_json(s.arg), waiter=s.waiter, match=to_json(s.match))
        named.update(resumed=self._body(s.resumed), trigger_json=s.trigger)
        # An event wait's waiters and signal stream, a trigger wait's trigger; else absent.
        named["waiters"] = self.keys.waiters(name) if s.waiter else None
        named["signals"] = self.keys.signals(name) if s.waiter else None
        named["trigger"] = s.record.tkey or None
        reply = scripts.SUSPEND.run(self.client, **named)
        record = AwaitRecord.model_validate_json(reply[1]) if len(reply) > 1 else None
        return AwaitOutcome(reply[0].decode(), record)

    def record_once(self, key: str, record: AwaitRecord, event: NewEvent) -> AwaitRecord:
        """Keep a ``once`` block's result (the first one recorded wins)."""
        named = self._run(event.run_id, event.flow, key=key, record=record.encoded())
        reply = scripts.ONCE.run(self.client, **named, event=self._body(event))
        return AwaitRecord.model_validate_json(reply)

    def await_records(self, run_id: str, step: str) -> dict[str, AwaitRecord]:
        """The awaits and ``once`` blocks ``step`` has reached, by key."""
        return {k: r for k, r in self._awaits(run_id).items() if k.startswith(f"{step}#")}

    def _awaits(self, run_id: str) -> dict[str, AwaitRecord]:
        raw: dict[bytes, bytes] = self.client.hgetall(self.keys.run_awaits(run_id))  # type: ignore[assignment]
        return {k.decode(): AwaitRecord.model_validate_json(v) for k, v in raw.items()}

    def read_trigger(self, trigger_id: str) -> TriggerInfo | None:
        raw = self.client.get(self.keys.trigger(trigger_id))
        if raw is None:
            return None
        data = json.loads(raw)
        return TriggerInfo(data["run_id"], data["flow"], data["step"], data["key"], data["state"])

    def resume(
        self, trigger_id: str, info: TriggerInfo, payload: Any, resumed: NewEvent, timer: str
    ) -> ResumeResult:
        """The trigger's one claim: resolve its await with ``payload`` and park ``timer``
        (which the caller sends) to run the step again."""
        body = self._body(resumed)  # checks the size before anything is written
        named = self._run(info.run_id, info.flow, step=info.step, key=info.key, timer=timer)
        named.update(trigger=self.keys.trigger(trigger_id), payload=to_json(payload), resumed=body)
        reply = scripts.RESUME.run(self.client, **named)
        outcome = reply[0].decode()
        if outcome == "ok":
            return ResumeResult("ok", arg=json.loads(reply[1]))
        return ResumeResult(outcome, state=reply[1].decode() if len(reply) > 1 else "")

    def cancel(self, run_id: str, flow: str, cancelled: NewEvent | None) -> Cancelled:
        """Append ``cancelled`` (flow.cancelled) and stop everything the run still holds:
        steps, timers, waiters, triggers. With ``None``, only release what an ended run
        holds."""
        named = self._run(run_id, flow, cancelled=self._body(cancelled))
        while True:
            # Pass the waiters hashes and triggers of pending awaits as KEYS; an await
            # registered meanwhile makes the script ask again.
            pending = [r for r in self._awaits(run_id).values() if r.state == "pending"]
            keys = sorted({key for r in pending for key in (r.wkey, r.tkey) if key})
            reply = scripts.CANCEL.run(self.client, **named, pending=keys)
            outcome = reply[0].decode()
            if outcome == "ended":
                return Cancelled("ended", status=reply[1].decode())
            if outcome == "ok":
                return Cancelled("cancelled", queued=[step.decode() for step in reply[1:]])

    def finish_step(
        self,
        event: NewEvent,
        outcome: Outcome,
        terminal: NewEvent | None,
        *,
        timer: str = "",
        due_ms: int = 0,
        arg: Any = None,
        expect: str = "",
    ) -> StepFinish:
        """Record a step's end once; append ``terminal`` if this ends the run.

        A flow.completed ``terminal`` holds ``"$duration_ms"`` for the coordinator to fill in.
        ``retry`` parks the step until the durable ``timer`` falls due at ``due_ms``,
        keeping ``arg`` (its input) for the retried delivery. With ``expect`` (the
        ``step_progress`` a caller outside the delivery read), only if the step is still there.
        """
        named = self._run(event.run_id, event.flow, step=event.step, outcome=outcome, timer=timer)
        named.update(event=self._body(event), kind=event.kind, terminal=self._body(terminal))
        named.update(due_ms=due_ms, arg=to_json(arg), expect=expect)
        return _step_finish(scripts.FINISH_STEP.run(self.client, **named))

    def rerun_note(self, event: NewEvent) -> Event | None:
        """Append ``event`` (flow.rerun) to its run's log, ended or not; None if the run is
        gone."""
        reply = scripts.RERUN_NOTE.run(
            self.client, **self._run(event.run_id, event.flow, event=self._body(event))
        )
        return None if reply is None else Event.stamped(event, reply.decode())

    def retry_run(self, retried: NewEvent, first_emits: Mapping[str, Any]) -> Retried:
        """Run a failed run again under its id (retry_run.lua): ``retried`` (flow.retried,
        its ``steps`` ``"$steps"``), and ``first_emits`` (name -> the first payload the run
        emitted of it, from its log) put back for joins still to come."""
        flat = [part for name, value in first_emits.items() for part in (name, to_json(value))]
        named = self._run(retried.run_id, retried.flow, retried=self._body(retried))
        reply = scripts.RETRY_RUN.run(self.client, **named, first_emits=flat)
        outcome = reply[0].decode()
        if outcome == "ok":
            steps = [step.decode() for step in reply[2:]]
            data = retried.data | {"steps": steps}
            stored = NewEvent(**(retried.body() | {"data": data}))
            return Retried("ok", Event.stamped(stored, reply[1].decode()), steps)
        if outcome == "not_failed":
            return Retried("not_failed", status=reply[1].decode())
        if outcome == "busy":
            return Retried("busy", busy_ms=int(reply[1]))
        return Retried("gone")

    def step_progress(self, run_id: str, step: str) -> str:
        """``"<status> <attempts>"`` of one step (``finish_step``'s ``expect``); ``" 0"``
        for a step the run does not know."""
        fields: list[bytes | None] = self.client.hmget(  # type: ignore[assignment]
            self.keys.run_steps(run_id), [step, f"{step}|attempts"]
        )
        status, attempts = fields
        return f"{(status or b'').decode()} {(attempts or b'0').decode()}"

    def step_statuses(self, run_id: str) -> dict[str, str]:
        raw: dict[bytes, bytes] = self.client.hgetall(self.keys.run_steps(run_id))  # type: ignore[assignment]
        return {k.decode(): v.decode() for k, v in raw.items() if b"|" not in k}

    def take_due(self, horizon_ms: int, limit: int, grace_ms: int) -> list[tuple[str, int]]:
        """Timers due within ``horizon_ms`` (and handed ones never claimed), moved to the
        handed set: ``[(timer, due ms)]``."""
        named = self._fixed | {"horizon_ms": horizon_ms, "limit": limit, "grace_ms": grace_ms}
        reply = scripts.TAKE_DUE.run(self.client, **named)
        return [(reply[i].decode(), int(reply[i + 1])) for i in range(0, len(reply), 2)]

    def send(self, sends: Sequence[BrokerWrite]) -> None:
        """Make one message's broker writes (a step sent outside any other call)."""
        scripts.SEND.run(self.client, sends=to_json(sends))

    def step_arg(self, run_id: str, step: str) -> Any:
        """The input kept for a step that waits for a retry."""
        raw = self.client.hget(self.keys.run_steps(run_id), f"{step}|arg")
        return None if raw is None else json.loads(raw)


def _step_start(reply: list[Any]) -> StepStart:
    """A claim's reply (claim_lib.lua) as a ``StepStart``."""
    decision = reply[0].decode()
    if decision == "run":
        return StepStart("run", attempt=int(reply[1]))
    if decision == "busy":
        return StepStart("busy", busy_ms=int(reply[1]))
    return StepStart(decision)


def _step_finish(reply: list[Any]) -> StepFinish:
    """A finish's reply (finish_lib.lua) as a ``StepFinish``."""
    if reply[0] == b"dup":
        return StepFinish(duplicate=True)
    return StepFinish(duplicate=False, terminal=bool(reply[2]))
