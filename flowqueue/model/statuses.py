"""What the coordinator's Lua scripts and Python share, defined once: step statuses, what
appending each event kind does, the step-duration buckets and the slots Lua fills in
(``flowqueue/backend/redis/scripts.py`` writes them into the scripts)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

from flowqueue.model import events
from flowqueue.model.events import EventKind

Outcome = Literal["completed", "failed", "retry"]
# A step in an active status keeps its run going; a finished step never changes again.
ACTIVE_STATUSES = ("queued", "running", "retrying", "awaiting")
FINISHED_STATUSES = ("completed", "failed", "cancelled")
STEP_STATUSES = ACTIVE_STATUSES + FINISHED_STATUSES
# What appending an event of each kind does besides writing the run's log: "log" nothing;
# "feed" mirrors it to the lifecycle feed; the others mirror it too and "status" sets the
# run's status (RUN_STATUS_BY_KIND), "await" / "resume" count a step awaiting / no longer
# awaiting, "duration" counts its data.duration_ms in the step-duration histogram.
APPEND_CODES: dict[str, str] = (
    dict.fromkeys(map(str, EventKind), "log")
    | dict.fromkeys(events.LIFECYCLE_KINDS, "feed")
    | dict.fromkeys(events.AWAIT_KINDS, "await")
    | dict.fromkeys(events.AWAIT_END_KINDS, "resume")
    | dict.fromkeys((EventKind.STEP_COMPLETED.value, EventKind.STEP_FAILED.value), "duration")
    | dict.fromkeys(events.RUN_STATUS_BY_KIND, "status")
)
# Upper bounds (ms) of the step-duration histogram; a last bucket, "inf", takes the rest.
DURATION_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
# JSON strings Python writes in an event body where the script supplies the value.
ATTEMPT_SLOT, RESULT_SLOT, DURATION_SLOT = "$attempt", "$result", "$duration_ms"
STEPS_SLOT = "$steps"  # flow.retried's steps, known only inside retry_run.lua
SLOTS = {"attempt": ATTEMPT_SLOT, "result": RESULT_SLOT, "duration_ms": DURATION_SLOT}
SLOTS["steps"] = STEPS_SLOT


def duration_quantile(buckets: Mapping[str, int], q: float) -> float | None:
    """The ``q`` quantile (0-1) of step durations in ms from the histogram's buckets (upper
    bound or ``"inf"`` -> count, not cumulative), interpolated within its bucket as
    Prometheus' ``histogram_quantile`` does; one in the last bucket gives its lower bound.
    None with no durations counted."""
    counts = [(float(bound), buckets.get(str(bound), 0)) for bound in DURATION_BUCKETS_MS]
    counts.append((math.inf, buckets.get("inf", 0)))
    total = sum(count for _, count in counts)
    if total == 0:
        return None
    rank, seen, lower = q * total, 0, 0.0
    for upper, count in counts:
        if count and seen + count >= rank:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
        lower = upper
    return lower
