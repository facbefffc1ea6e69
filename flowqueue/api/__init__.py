"""The HTTP API: flows, runs, gap-free SSE streams, triggers, workers and metrics.

Install with ``pip install 'flowqueue[api]'`` and run ``flowqueue api``. Routes by
topic (``routes_*``), problem responses (``problems``), SSE (``sse``, ``frames``),
request limits (``body``, ``server``), auth (``auth``), the vendored
Swagger UI (``docs/``).

May import: ``runtime``, ``authoring``, ``backend``, ``model``, ``settings``,
``errors``. Never the CLI.
"""

from flowqueue.api.app import create_api

__all__ = ["create_api"]
