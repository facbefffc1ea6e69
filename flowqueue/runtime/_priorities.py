"""Celery message priorities of step deliveries: runs in progress before new runs.

A burst of new runs must not delay what runs already in progress are owed: a sleep that
fell due, a retry, a resumed await, the next step after an emit. So the first steps of a
new run are sent at a lower priority than every later delivery of a run. On a Redis
broker kombu keeps one list per priority step and pops the highest first (0 is highest
there). RabbitMQ honours priorities on queues declared with ``x-max-priority`` (Celery's
``task_queue_max_priority``, 10 in flowqueue's defaults), where a higher number goes
first: later deliveries get the top one, new runs none (0, as a plain task's). Other
brokers get none unless told to.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flowqueue.settings import Settings

REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "sentinel"})
REDIS_IN_FLIGHT = 0  # kombu's Redis transport: 0 is served first
REDIS_NEW_RUN = 3  # the next of kombu's default priority steps (0, 3, 6, 9)
AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp", "librabbitmq"})


@dataclass(frozen=True)
class StepPriorities:
    new_run: int | None  # entry steps of a run being started
    in_flight: int | None  # every later delivery: next steps, timers, resumes, re-checks


def step_priorities(
    broker_url: str | None, settings: Settings, max_priority: int | None = None
) -> StepPriorities:
    """``max_priority``: the app's ``task_queue_max_priority`` (RabbitMQ's queues)."""
    scheme = urlsplit(broker_url or "").scheme.lower()
    new_run, in_flight = settings.new_run_priority, settings.in_flight_priority
    if scheme in REDIS_SCHEMES:
        default_new, default_in_flight = REDIS_NEW_RUN, REDIS_IN_FLIGHT
    elif scheme in AMQP_SCHEMES and max_priority:
        default_new, default_in_flight = None, min(max_priority, 10) - 1  # the top: 0 to 9
    else:
        default_new = default_in_flight = None
    return StepPriorities(
        new_run=new_run if new_run is not None else default_new,
        in_flight=in_flight if in_flight is not None else default_in_flight,
    )
