"""Standard ``logging`` calls made inside a step are recorded in the run's log too."""

from __future__ import annotations

import contextvars
import logging

from flowqueue.authoring.context import current_context
from flowqueue.model.events import EventKind

# Loggers of the machinery itself: recording them would recurse or flood runs with noise.
_IGNORED = ("flowqueue", "celery", "kombu", "amqp", "redis", "billiard", "urllib3", "asyncio")
_writing: contextvars.ContextVar[bool] = contextvars.ContextVar("fq_log_writing", default=False)


class RunLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        ctx = current_context()
        if (
            ctx is None
            or ctx.replaying
            or _writing.get()
            or getattr(record, "flowqueue_recorded", False)
            or record.name.startswith(_IGNORED)
        ):
            return
        token = _writing.set(True)
        try:
            fields = {"logger": record.name}
            if record.exc_info and record.exc_info[1] is not None:
                fields["exception"] = repr(record.exc_info[1])
            ctx.append(
                EventKind.LOG,
                level=record.levelname.lower(),
                msg=record.getMessage(),
                fields=fields,
            )
        except Exception:
            self.handleError(record)
        finally:
            _writing.reset(token)


def ensure_installed(logger: logging.Logger | None = None) -> None:
    """Attach one ``RunLogHandler`` to the root logger (idempotent)."""
    root = logger or logging.getLogger()
    if not any(isinstance(h, RunLogHandler) for h in root.handlers):
        root.addHandler(RunLogHandler())
