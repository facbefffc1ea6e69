"""Every Redis key and channel name flowqueue uses, in one place.

Per-run keys put the run id in a hash tag (``{<run>}``) so all keys of one run share a
Redis Cluster slot. The cross-run keys (flow index, lifecycle feed) live in other slots.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "fq"

    def run_stream(self, run_id: str) -> str:
        """Stream: the run's log, the source of truth."""
        return f"{self.prefix}:run:{{{run_id}}}"

    def run_live(self, run_id: str) -> str:
        """Pub/Sub channel: one message per append call, a ``<id> <body-json>`` line per event."""
        return f"{self.prefix}:run:{{{run_id}}}:live"

    def run_meta(self, run_id: str) -> str:
        """Hash: flow, status, started_ms, ended_ms (bookkeeping kept by the append script)."""
        return f"{self.prefix}:run:{{{run_id}}}:meta"

    def run_steps(self, run_id: str) -> str:
        """Hash: ``<step>`` -> status (queued, running, completed, failed), and per step
        ``<step>|attempts`` and ``<step>|lease`` (ms until which a running attempt is live)."""
        return f"{self.prefix}:run:{{{run_id}}}:steps"

    def run_emits(self, run_id: str) -> str:
        """Hash: event name -> JSON payload of its first emission in the run (joins)."""
        return f"{self.prefix}:run:{{{run_id}}}:emits"

    def flow_runs(self, flow: str) -> str:
        """Sorted set (lexicographic): ``<start-ms, 13 digits>:<run id>``, one per run."""
        return f"{self.prefix}:runs:{flow}"

    @property
    def feed(self) -> str:
        """Capped stream of every run's lifecycle events (dashboards, run lists)."""
        return f"{self.prefix}:events"

    @property
    def feed_live(self) -> str:
        """Pub/Sub channel mirroring ``feed`` (message format as ``run_live``)."""
        return f"{self.prefix}:events:live"

    @property
    def timers(self) -> str:
        """Sorted set: durable timers by due time."""
        return f"{self.prefix}:timers"

    @property
    def registry(self) -> str:
        """Stream: worker.registered / worker.heartbeat / worker.deregistered."""
        return f"{self.prefix}:registry"
