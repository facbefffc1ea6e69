"""The default Celery app (``flowqueue.app``) and ``install`` for an existing one."""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery
from celery.utils.imports import import_from_cwd

from flowqueue.runtime._celery_hooks import connect
from flowqueue.runtime._monitor import name_sent_events
from flowqueue.runtime.engine import Flowqueue
from flowqueue.settings import Settings


def install(app: Any, settings: Settings | None = None) -> Flowqueue:
    """Add flowqueue to a Celery app: ``app.flowqueue``, worker hooks, flow discovery."""
    fq = Flowqueue(app, settings or Settings())
    app.flowqueue = fq
    connect(app, fq)  # worker hooks, and what only Celery sees of a step
    name_sent_events(app)  # monitors see <flow>/<step> whichever task event comes last
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
