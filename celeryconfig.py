"""Celery settings for ``celery -A flowqueue worker`` in this project.

They start from flowqueue's recommended settings (``flowqueue/runtime/celery_defaults.py``,
where each is explained); override any of them below. The broker is
``CELERY_BROKER_URL`` if set, else ``FLOWQUEUE_REDIS_URL``.
"""

from flowqueue.runtime.celery_defaults import *  # noqa: F403

# Examples:
# worker_concurrency = 8
# task_routes = {"workers.orders.*": {"queue": "orders"}}
