"""Dropping expired runs from what lists and counts them across runs.

Redis deletes an ended run's own keys when its retention passes: the script that ends the
run sets their expiry. A member of the flow index, an entry of the lifecycle feed and a
counter cannot expire by themselves, so each worker's timer pump calls ``RetentionSweep``
every ``retention_sweep_seconds`` (listing a flow's runs or reading its counters drops that
flow's first, too). Sweeps in several workers race harmlessly: a run is dropped by the one
that takes it out of its flow's expiry set.
"""

from __future__ import annotations

import logging
import time

from flowqueue.runtime._connections import Connections

log = logging.getLogger(__name__)


class RetentionSweep:
    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        self._next = 0.0  # time.monotonic() of the next sweep

    def maybe(self) -> int:
        """Sweep if its time has come; returns how many runs it dropped."""
        now = time.monotonic()
        if now < self._next:
            return 0
        self._next = now + self.connections.settings.retention_sweep_seconds
        dropped = self.connections.store.sweep()
        if dropped:
            log.info("dropped %d expired runs from the index, feed and counters", len(dropped))
        return len(dropped)
