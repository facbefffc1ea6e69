"""The run ledger on Redis: one Lua script per transition, one round trip each."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import redis
from pydantic_core import to_json

from flowqueue.events import Event, NewEvent, encode_body
from flowqueue.ledger.base import Candidate, Claim, Outcome, StepFinish, StepStart
from flowqueue.store.lua import LuaScript
from flowqueue.store.redis_commands import RedisCommands
from flowqueue.validation import check_json

START_RUN = LuaScript.per_run("flowqueue.ledger", "start_run.lua")
BEGIN_STEP = LuaScript.per_run("flowqueue.ledger", "begin_step.lua")
EMIT = LuaScript.per_run("flowqueue.ledger", "emit.lua")
FINISH_STEP = LuaScript.per_run("flowqueue.ledger", "finish_step.lua")
RENEW_LEASE = LuaScript.load("flowqueue.ledger", "renew_lease.lua")


class RedisRunLedger:
    def __init__(self, client: redis.Redis, commands: RedisCommands) -> None:
        self.client = client
        self._cmd = commands

    def _call(self, run_id: str, flow: str) -> tuple[list[str], list[Any]]:
        keys, argv = self._cmd.run_call(run_id, flow)
        keys += [self._cmd.keys.run_steps(run_id), self._cmd.keys.run_emits(run_id)]
        return keys, argv

    def _body(self, event: NewEvent) -> bytes:
        return encode_body(event, self._cmd.max_payload)

    def start_run(self, started: NewEvent, entry_steps: Sequence[str]) -> Event | None:
        keys, argv = self._call(started.run_id, started.flow)
        reply = START_RUN.run(self.client, keys, [*argv, self._body(started), *entry_steps])
        if reply[0] == b"exists":
            return None
        return Event.stamped(started, reply[1].decode())

    def begin_step(self, started: NewEvent, lease_ms: int) -> StepStart:
        keys, argv = self._call(started.run_id, started.flow)
        reply = BEGIN_STEP.run(
            self.client, keys, [*argv, started.step, lease_ms, self._body(started)]
        )
        decision = reply[0].decode()
        if decision == "run":
            return StepStart("run", attempt=int(reply[1]))
        if decision == "busy":
            return StepStart("busy", busy_ms=int(reply[1]))
        return StepStart(decision)

    def renew_lease(self, run_id: str, step: str, lease_ms: int) -> bool:
        key = self._cmd.keys.run_steps(run_id)
        return bool(RENEW_LEASE.run(self.client, [key], [step, lease_ms]))

    def emit(
        self,
        event: NewEvent,
        payload: Any,
        candidates: Sequence[Candidate],
        *,
        republish: bool = False,
    ) -> tuple[Event, list[Claim]]:
        check_json(payload, "payload")
        body = self._body(event)  # validates size before anything is sent
        keys, argv = self._call(event.run_id, event.flow)
        argv += [event.data["name"], body, to_json(payload), int(republish), len(candidates)]
        for candidate in candidates:
            argv += [candidate.step, len(candidate.subscribes), *candidate.subscribes]
        reply = EMIT.run(self.client, keys, argv)
        claims = []
        for claimed in reply[1:]:
            step, payloads = claimed[0].decode(), claimed[1:]
            by_name = next(c for c in candidates if c.step == step).subscribes
            inputs = {name: json.loads(p) for name, p in zip(by_name, payloads, strict=True)}
            claims.append(Claim(step, inputs))
        return Event.stamped(event, reply[0].decode()), claims

    def finish_step(self, event: NewEvent, outcome: Outcome, terminal: NewEvent) -> StepFinish:
        keys, argv = self._call(event.run_id, event.flow)
        argv += [event.step, outcome, self._body(event), self._body(terminal)]
        reply = FINISH_STEP.run(self.client, keys, argv)
        if reply[0] == b"dup":
            return StepFinish(duplicate=True)
        return StepFinish(duplicate=False, terminal=bool(reply[2]))

    def step_statuses(self, run_id: str) -> dict[str, str]:
        raw: dict[bytes, bytes] = self.client.hgetall(self._cmd.keys.run_steps(run_id))  # type: ignore[assignment]
        return {k.decode(): v.decode() for k, v in raw.items() if b"|" not in k}
