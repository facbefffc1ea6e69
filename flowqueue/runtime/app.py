"""The default Celery app (``flowqueue.app``) and ``install`` for an existing one."""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery, signals
from celery.utils.imports import import_from_cwd

from flowqueue.runtime.engine import Flowqueue
from flowqueue.runtime.workers import describe_worker
from flowqueue.settings import Settings


def install(app: Any, settings: Settings | None = None) -> Flowqueue:
    """Add flowqueue to a Celery app: ``app.flowqueue``, worker hooks, flow discovery."""
    fq = Flowqueue(app, settings or Settings())
    app.flowqueue = fq
    registration = fq.worker_registration

    def import_flows(sender: Any = None, **_: Any) -> None:
        if sender is app:  # import the flow modules when this app's worker starts
            fq.import_workers()

    def worker_ready(sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is app:  # sender: the worker's Consumer
            fq.timer_pump.start()  # every worker pumps timers: no single point
            registration.start(sender.hostname, describe_worker(app, sender))

    def worker_shutdown(sender: Any = None, **_: Any) -> None:
        fq.timer_pump.stop()
        if getattr(sender, "app", None) is app:  # sender: the WorkController
            registration.stop()

    signals.import_modules.connect(import_flows, weak=False)
    signals.worker_process_init.connect(fq.connections.reset_after_fork, weak=False)
    signals.worker_ready.connect(worker_ready, weak=False)
    signals.worker_shutdown.connect(worker_shutdown, weak=False)
    return fq


def _config_module() -> str:
    """The project's ``celeryconfig`` if it has one, else flowqueue's defaults; looked
    for in the working directory first, as Celery looks for ``-A`` (the ``celery``
    console script does not put the working directory on ``sys.path``)."""
    try:
        import_from_cwd("celeryconfig")
    except ModuleNotFoundError as exc:
        if exc.name != "celeryconfig":
            raise
        return "flowqueue.runtime.celery_defaults"
    return "celeryconfig"


def create_app(settings: Settings | None = None, main: str = "flowqueue") -> Celery:
    settings = settings or Settings()
    broker = os.environ.get("CELERY_BROKER_URL") or settings.redis_url
    app = Celery(main, broker=broker)
    app.config_from_object(_config_module())
    if settings.visibility_timeout is not None:
        # kombu sweeps for abandoned messages every interval x throttle seconds (100 s by
        # default); a short visibility timeout only helps if the sweep keeps pace with it.
        options = dict(app.conf.broker_transport_options or {})
        options["visibility_timeout"] = settings.visibility_timeout
        options.setdefault(
            "unacked_restore_interval", max(1, min(10, round(settings.visibility_timeout / 3)))
        )
        options.setdefault("unacked_restore_throttle", 1)
        app.conf.broker_transport_options = options
    install(app, settings)
    return app


_default: list[Celery] = []  # the lazily created default app (one per process)
_default_lock = threading.Lock()


def default_app() -> Celery:
    """``flowqueue.app``: created on first use, so ``FLOWQUEUE_*`` variables set after
    ``import flowqueue`` still apply (and importing never connects anywhere)."""
    if not _default:
        with _default_lock:
            if not _default:
                _default.append(create_app())
    return _default[0]
