"""Celery message priorities of step deliveries: runs in progress before new runs.

A burst of new runs must not delay what runs already in progress are owed: a sleep that
fell due, a retry, a resumed await, the next step after an emit. So the first steps of a
new run are sent at a lower priority than every later delivery of a run. On a Redis
broker kombu keeps one list per priority step and pops the highest first (0 is highest
there); other brokers honour priorities only on queues declared with ``x-max-priority``,
so flowqueue sets none for them unless told to.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flowqueue.settings import Settings

REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "sentinel"})
REDIS_IN_FLIGHT = 0  # kombu's Redis transport: 0 is served first
REDIS_NEW_RUN = 3  # the next of kombu's default priority steps (0, 3, 6, 9)


@dataclass(frozen=True)
class StepPriorities:
    new_run: int | None  # entry steps of a run being started
    in_flight: int | None  # every later delivery: next steps, timers, resumes, re-checks


def step_priorities(broker_url: str | None, settings: Settings) -> StepPriorities:
    on_redis = urlsplit(broker_url or "").scheme.lower() in REDIS_SCHEMES
    new_run, in_flight = settings.new_run_priority, settings.in_flight_priority
    return StepPriorities(
        new_run=new_run if new_run is not None else (REDIS_NEW_RUN if on_redis else None),
        in_flight=in_flight if in_flight is not None else (REDIS_IN_FLIGHT if on_redis else None),
    )
