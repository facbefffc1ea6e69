"""Signals and starts that start runs, at most once per idempotency key: the calls of
``signal_start.lua``, ``claim_start.lua`` and ``idempotency_done.lua``.

The caller picks the run ids first and the script records them with the key in one
step, so every call with the key gets the same ids back; starting a run with a given id
happens once (``start_run.lua``), so any caller may finish starting them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import redis
from pydantic_core import to_json

from flowqueue.backend.redis import scripts
from flowqueue.backend.redis.keys import Keys
from flowqueue.errors import PayloadTooLarge
from flowqueue.settings import Settings


@dataclass(frozen=True)
class StartAnswer:
    """What a call did, or what the first call with its key did (``state`` not ``new``):
    ``seen`` while that call may still be starting its runs, ``done`` once it has."""

    state: Literal["new", "seen", "done"]
    runs: dict[str, str]  # flow -> run id
    signal_id: str = ""
    woken: int = 0
    wake: tuple[str, ...] = ()  # timers of the waits this call woke, to send now (new only)


class RedisStarts:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._window_ms = int(settings.idempotency_seconds * 1000)

    def signal(
        self, name: str, payload: Any, runs: Mapping[str, str], key: str | None
    ) -> StartAnswer:
        """Record signal ``name`` (waking the waits it matches) with the ``runs`` the
        caller is to start, unless ``key`` was used within the window."""
        raw = to_json(payload)
        limit = self.settings.max_payload_bytes
        if len(raw) > limit:
            raise PayloadTooLarge(
                f"payload of event {name!r} is {len(raw)} bytes encoded; the limit is {limit} "
                "(FLOWQUEUE_MAX_PAYLOAD_BYTES). Store large data elsewhere and send a reference."
            )
        named = {
            "signals": self.keys.signals(name),
            "waiters": self.keys.waiters(name),
            "handed": self.keys.timers_handed,
            "payloads": self.keys.timer_payloads,
            "idempotency": None if key is None else self.keys.idempotency("signal", name, key),
            "payload": raw,
            "maxlen": self.settings.signal_maxlen,
            "ttl_ms": int(self.settings.signal_retention_seconds * 1000),
            "grace_ms": int(self.settings.timer_rehand_seconds * 1000),
            "runs": to_json(dict(runs)),
            "idempotency_ms": self._window_ms,
        }
        return _answer(scripts.SIGNAL_START.run(self.client, **named))

    def claim_start(
        self, flow: str, run_id: str, key: str, scope: StartScope = "start"
    ) -> StartAnswer:
        """Record that a start of ``flow`` with ``key`` starts ``run_id``, unless ``key``
        was used within the window. ``scope``: whose keys these are (a webhook's delivery
        ids never meet the keys of manual starts)."""
        named = {
            "idempotency": self.keys.idempotency(scope, flow, key),
            "runs": to_json({flow: run_id}),
            "idempotency_ms": self._window_ms,
        }
        return _answer(scripts.CLAIM_START.run(self.client, **named))

    def done(self, what: Literal["signal"] | StartScope, name: str, key: str) -> None:
        """The runs of ``key`` have started: later calls need not help start them."""
        idempotency = self.keys.idempotency(what, name, key)
        scripts.IDEMPOTENCY_DONE.run(self.client, idempotency=idempotency)


StartScope = Literal["start", "webhook"]  # the keys of manual starts, of webhook deliveries


def _answer(reply: list[Any]) -> StartAnswer:
    state, runs, signal_id, woken, wake = reply
    return StartAnswer(
        state=state.decode(),
        runs=json.loads(runs),
        signal_id=signal_id.decode(),
        woken=int(woken),
        wake=tuple(member.decode() for member in wake),
    )
