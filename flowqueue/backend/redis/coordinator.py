"""The run coordinator on Redis: one Lua script per transition, one round trip each."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic_core import to_json

from flowqueue.backend.coordinator import Candidate, Claim, Emitted, StepFinish, StepStart
from flowqueue.backend.redis._coordinator_awaits import RedisAwaitOps
from flowqueue.backend.redis.scripts import LuaScript
from flowqueue.model.events import Event, NewEvent
from flowqueue.model.statuses import Outcome
from flowqueue.model.timers import TimerSpec
from flowqueue.model.validation import check_json

START_RUN = LuaScript.per_run("start_run.lua")
BEGIN_STEP = LuaScript.per_run("begin_step.lua", "trigger_lib.lua")
EMIT = LuaScript.per_run("emit.lua", "signal_lib.lua")
FINISH_STEP = LuaScript.per_run("finish_step.lua")
RENEW_LEASE = LuaScript.load("renew_lease.lua")
TAKE_DUE = LuaScript.load("take_due.lua")


class RedisRunCoordinator(RedisAwaitOps):
    def start_run(self, started: NewEvent, entry_steps: Sequence[str]) -> Event | None:
        keys, argv = self._call(started.run_id, started.flow)
        reply = START_RUN.run(self.client, keys, [*argv, self._body(started), *entry_steps])
        if reply[0] == b"exists":
            return None
        return Event.stamped(started, reply[1].decode())

    def begin_step(
        self,
        started: NewEvent,
        lease_ms: int,
        *,
        timer: str = "",
        on_claim: NewEvent | None = None,
    ) -> StepStart:
        waiters = trigger = self.keys.timers  # placeholders unless a timeout names them
        if timer:
            spec = TimerSpec.model_validate_json(timer)
            if spec.name:
                waiters = self.keys.waiters(spec.name)
            if spec.trigger:
                trigger = self.keys.trigger(spec.trigger)
        keys, argv = self._call(started.run_id, started.flow, waiters, trigger)
        claim_body = self._body(on_claim) if on_claim is not None else b""
        argv += [started.step, lease_ms, self._body(started), timer, claim_body]
        argv.append(self._trigger_retention_ms)
        reply = BEGIN_STEP.run(self.client, keys, argv)
        decision = reply[0].decode()
        if decision == "run":
            return StepStart("run", attempt=int(reply[1]))
        if decision == "busy":
            return StepStart("busy", busy_ms=int(reply[1]))
        return StepStart(decision)

    def renew_lease(self, run_id: str, step: str, lease_ms: int) -> bool:
        key = self.keys.run_steps(run_id)
        return bool(RENEW_LEASE.run(self.client, [key], [step, lease_ms]))

    def emit(
        self,
        event: NewEvent,
        payload: Any,
        candidates: Sequence[Candidate],
        *,
        republish: bool = False,
    ) -> Emitted:
        check_json(payload, "payload")
        body = self._body(event)  # validates size before anything is sent
        name = event.data["name"]
        keys, argv = self._call(
            event.run_id, event.flow, self.keys.signals(name), self.keys.waiters(name)
        )
        settings = self.settings
        ttl_ms = int(settings.signal_retention_seconds * 1000)
        argv += [name, body, to_json(payload), int(republish), settings.signal_maxlen, ttl_ms]
        argv += [self._rehand_ms, len(candidates)]
        for candidate in candidates:
            argv += [candidate.step, len(candidate.subscribes), *candidate.subscribes]
        reply = EMIT.run(self.client, keys, argv)
        claims = []
        for claimed in reply[2:]:
            step, payloads = claimed[0].decode(), claimed[1:]
            by_name = next(c for c in candidates if c.step == step).subscribes
            inputs = {name: json.loads(p) for name, p in zip(by_name, payloads, strict=True)}
            claims.append(Claim(step, inputs))
        woken = [member.decode() for member in reply[1]]
        return Emitted(Event.stamped(event, reply[0].decode()), claims, woken)

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
        keys, argv = self._call(event.run_id, event.flow)
        terminal_body = self._body(terminal) if terminal is not None else b""
        argv += [event.step, outcome, self._body(event), terminal_body, timer, due_ms]
        argv.append(to_json(arg))
        reply = FINISH_STEP.run(self.client, keys, argv)
        if reply[0] == b"dup":
            return StepFinish(duplicate=True)
        return StepFinish(duplicate=False, terminal=bool(reply[2]))

    def step_statuses(self, run_id: str) -> dict[str, str]:
        raw: dict[bytes, bytes] = self.client.hgetall(self.keys.run_steps(run_id))  # type: ignore[assignment]
        return {k.decode(): v.decode() for k, v in raw.items() if b"|" not in k}

    def take_due(self, horizon_ms: int, limit: int, grace_ms: int) -> list[tuple[str, int]]:
        keys = [self.keys.timers, self.keys.timers_handed]
        reply = TAKE_DUE.run(self.client, keys, [horizon_ms, limit, grace_ms])
        return [(reply[i].decode(), int(reply[i + 1])) for i in range(0, len(reply), 2)]

    def step_arg(self, run_id: str, step: str) -> Any:
        raw = self.client.hget(self.keys.run_steps(run_id), f"{step}|arg")
        return None if raw is None else json.loads(raw)
