"""The HTTP API: flows, runs, gap-free SSE streams, triggers, workers and metrics.

Install with ``pip install 'flowqueue[api]'`` and run ``flowqueue api``.
"""

from flowqueue.api.app import create_api

__all__ = ["create_api"]
