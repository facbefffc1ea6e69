"""The engine inside a worker and a caller: the Celery app (``app``), flowqueue's part
of it (``engine``: ``app.flowqueue``), the public calls (``client``: ``start_flow``,
``signal``, ...), the worker registry (``workers``) and the middleware seam
(``middleware``) the step runner calls every worker concern through.

Private parts: the orchestrator (what runs next), the step runner and the standard
middleware (claim, log capture, lease, suspension, retries, completion), the awaits of
one execution (replay), the timer pump, leases, priorities and per-process connections.

May import: ``authoring``, ``backend``, ``model``, ``settings``, ``errors``. Never the
API, the CLI or the dev tools.
"""
