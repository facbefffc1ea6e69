"""What every Redis coordinator call shares: the client, key names and the per-run KEYS/ARGV."""

from __future__ import annotations

from typing import Any

from flowqueue.backend.redis.store import RedisEventStore
from flowqueue.model.events import NewEvent, encode_body


class RedisCoordinatorCore:
    def __init__(self, store: RedisEventStore) -> None:
        self.client = store.client
        self.settings = store.settings
        self._cmd = store.commands
        self.keys = store.commands.keys

    def _call(self, run_id: str, flow: str, *extra: str) -> tuple[list[str], list[Any]]:
        """KEYS 1-4 (run_lib.lua), 5 steps, 6 emits, 7 timers, 8 handed timers, 9 awaits,
        10 timer payloads, then ``extra``, then the flow's counters (run_lib.lua: always
        the last key); ARGV 1-5 (run_lib.lua)."""
        keys, argv = self._cmd.run_call(run_id, flow)
        names = self.keys
        keys += [names.run_steps(run_id), names.run_emits(run_id), names.timers]
        keys += [names.timers_handed, names.run_awaits(run_id), names.timer_payloads, *extra]
        keys.append(names.flow_stats(flow))
        return keys, argv

    def _body(self, event: NewEvent) -> bytes:
        return encode_body(event, self._cmd.max_payload)

    @property
    def _rehand_ms(self) -> int:
        return int(self.settings.timer_rehand_seconds * 1000)

    @property
    def _trigger_retention_ms(self) -> int:
        return int(self.settings.trigger_retention_seconds * 1000)
