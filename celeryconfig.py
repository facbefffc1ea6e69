"""Celery settings used by ``celery -A flowqueue worker`` (recommended for flows).

flowqueue reads this module when it builds its default Celery app; an existing app can
take the same values. Environment variables still win where Celery supports them.
"""

import os

# The broker defaults to the Redis that holds the event logs (FLOWQUEUE_REDIS_URL).
broker_url = os.environ.get(
    "CELERY_BROKER_URL", os.environ.get("FLOWQUEUE_REDIS_URL", "redis://127.0.0.1:6379/0")
)

# JSON only: no pickle anywhere, in messages or results.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]

# Steps are acknowledged after they finish and re-queued if the worker dies mid-step:
# at-least-once delivery, which flowqueue turns into effects-once with deterministic
# step ids.
task_acks_late = True
task_reject_on_worker_lost = True

# Long steps: a worker reserves one message at a time, so a slow step does not hold
# others hostage in its prefetch buffer.
worker_prefetch_multiplier = 1

# Task events on, so Flower and `celery events` see every step.
worker_send_task_events = True
task_send_sent_event = True

# Results live in the event log; Celery's result backend is not needed.
task_ignore_result = True

# On a Redis broker, unacknowledged messages come back after this many seconds. flowqueue
# never relies on ETA/countdown messages for long delays (durable timers do that), so the
# default hour is only the bound on how long a lost worker's step waits for redelivery.
broker_transport_options = {"visibility_timeout": 3600}

timezone = "UTC"
enable_utc = True
