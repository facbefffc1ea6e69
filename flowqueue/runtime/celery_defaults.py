"""Celery settings recommended for flows; the default app uses them unless a top-level
``celeryconfig`` module exists (the project's ``celeryconfig.py`` starts from these).

The broker is not set here: it is ``CELERY_BROKER_URL`` if set, else
``FLOWQUEUE_REDIS_URL`` (the Redis that holds the event logs).
"""

# JSON only: no pickle anywhere, in messages or results.
task_serializer = "json"
result_serializer = "json"
accept_content = ["json"]

# Steps are acknowledged after they finish and re-queued if the worker dies mid-step:
# at-least-once delivery, which flowqueue turns into effects-once with deterministic
# step ids and an atomic claim per delivery.
task_acks_late = True
task_reject_on_worker_lost = True

# Long steps: a worker reserves one message at a time, so a slow step does not hold
# others hostage in its prefetch buffer.
worker_prefetch_multiplier = 1

# Task events on, so Flower and `celery events` see every step from the moment it is
# sent: without them a monitor sees a step only once it enables events at run time
# (Flower does every few seconds), and never one sent before that. They cost a few small
# messages per delivery on the broker's event exchange, dropped when nobody listens.
# flowqueue's own (task-awaiting, task-resumed: flowqueue/runtime/_monitor.py) are sent
# either way, as Celery's Task.send_event is.
worker_send_task_events = True
task_send_sent_event = True

# On RabbitMQ, the queues Celery declares take priorities 0-9 (x-max-priority), so a
# run's later steps, due sleeps and retries go ahead of new runs (runtime/_priorities.py).
# RabbitMQ refuses to declare an existing queue again with other arguments: a queue made
# before without it must be deleted once, or set this to None to keep it (no priorities).
# The Redis transport ignores it (kombu keeps its own priority lists there).
task_queue_max_priority = 10

# Results live in the event log; Celery's result backend is not needed.
task_ignore_result = True

# On a Redis broker, unacknowledged messages come back after this many seconds. flowqueue
# never relies on ETA/countdown messages for long delays (durable timers do that), so the
# default hour is only the bound on how long a lost worker's step waits for redelivery.
broker_transport_options = {"visibility_timeout": 3600}
# Survive a Redis restart: keep retrying the broker connection instead of exiting.
broker_connection_retry_on_startup = True

timezone = "UTC"
enable_utc = True
