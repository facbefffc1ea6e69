"""How the ``flowqueue`` command reports failures: one line saying what is wrong and
what to do, and an exit status; never a traceback (unless FLOWQUEUE_TRACEBACK=1).

Every command runs inside ``FriendlyGroup.invoke``, the one place that maps exceptions.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from dataclasses import dataclass
from typing import IO, Any

import click
import redis.exceptions
from kombu.exceptions import OperationalError
from pydantic import ValidationError
from pydantic_settings import SettingsError

from flowqueue.errors import ConfigurationError, FlowqueueError
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.settings import Settings, redact_url

TRACEBACK_VAR = "FLOWQUEUE_TRACEBACK"
MAX_MESSAGE = 600  # a message quoting a huge value stays readable
EXIT_FAILED = 1  # bad input, unknown ids, unreachable services; a run that did not complete
EXIT_UNEXPECTED = 2  # a bug or a case not mapped here
EXIT_TIMEOUT = 124  # gave up waiting (--timeout), as timeout(1) reports it
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
_PYDANTIC_LINK = "For further information visit"  # the last line of pydantic's errors


def show_tracebacks() -> bool:
    return os.environ.get(TRACEBACK_VAR, "") not in ("", "0")


def one_line(text: str) -> str:
    """``text`` on one line (control characters escaped), cut to a readable length."""
    parts = (part.strip() for part in text.splitlines())
    flat = "; ".join(part for part in parts if part and not part.startswith(_PYDANTIC_LINK))
    flat = "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)
    return flat if len(flat) <= MAX_MESSAGE else flat[: MAX_MESSAGE - 3] + "..."


class CliError(click.ClickException):
    """A failure reported as ``Error: <message>``; with FLOWQUEUE_TRACEBACK=1 the
    traceback of its cause comes first."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))

    def show(self, file: IO[Any] | None = None) -> None:
        self.show_cause(file)
        super().show(file)

    def show_cause(self, file: IO[Any] | None) -> None:
        if self.__cause__ is not None and show_tracebacks():
            traceback.print_exception(self.__cause__, file=file or sys.stderr)


class WaitTimedOut(CliError):
    """``--timeout`` passed before the run ended (the run itself goes on)."""

    exit_code = EXIT_TIMEOUT

    def __init__(self, run_id: str, seconds: float, last_kind: str) -> None:
        last = f"; its last event was {last_kind}" if last_kind else ""
        super().__init__(
            f"timed out after {seconds:g} s waiting for run {run_id} to end{last}; "
            f"it goes on: `flowqueue tail {run_id}` follows it again"
        )


class UnexpectedError(CliError):
    exit_code = EXIT_UNEXPECTED

    def __init__(self, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")

    def show(self, file: IO[Any] | None = None) -> None:
        self.show_cause(file)
        click.echo(
            f"flowqueue: unexpected error {self.message} "
            f"(set {TRACEBACK_VAR}=1 to see the traceback)",
            err=True,
        )


@dataclass
class Urls:
    """Where the command's Redis and broker are, for messages (passwords redacted)."""

    app: Any = None

    @property
    def redis(self) -> str:
        settings = getattr(getattr(self.app, "flowqueue", None), "settings", None)
        url = getattr(settings, "redis_url", None)
        if not isinstance(url, str):
            url = (
                os.environ.get("FLOWQUEUE_REDIS_URL") or Settings.model_fields["redis_url"].default
            )
        return redact_url(url)

    @property
    def broker(self) -> str:
        url = getattr(getattr(self.app, "conf", None), "broker_url", None)
        return redact_url(url) if isinstance(url, str) else "the configured broker"


def describe(exc: BaseException, urls: Urls) -> CliError:
    """The one-line report of ``exc``."""
    if isinstance(exc, FlowqueueError):
        return CliError(str(exc) or type(exc).__name__)
    if isinstance(exc, redis.exceptions.AuthenticationError):
        return CliError(
            f"Redis at {urls.redis} refused the credentials ({exc}); fix the user and "
            "password in FLOWQUEUE_REDIS_URL"
        )
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return CliError(
            f"cannot reach Redis at {urls.redis}: {reason(exc)}; start "
            "redis-server or set FLOWQUEUE_REDIS_URL"
        )
    if isinstance(exc, redis.exceptions.ResponseError) and "DB index" in str(exc):
        return CliError(
            f"Redis at {urls.redis} has no such database ({exc}); use a database number "
            "the server has (redis://host:port/0) in FLOWQUEUE_REDIS_URL"
        )
    if isinstance(exc, OperationalError):  # kombu's: the Celery broker
        return broker_unreachable(exc, urls)
    if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
        return CliError(describe_settings_error(exc))
    if isinstance(exc, SettingsError):
        return CliError(f"{exc}; fix that FLOWQUEUE_ variable (JSON for a list) or unset it")
    if isinstance(exc, ValueError) and _raised_in(exc, "redis."):
        # redis-py parses the URL at the first connection
        return CliError(
            f"FLOWQUEUE_REDIS_URL={urls.redis!r} is not a Redis URL ({exc}): use "
            "redis://host:port/db"
        )
    return UnexpectedError(exc)


def broker_unreachable(exc: BaseException, urls: Urls) -> CliError:
    broker = urls.broker
    if broker == urls.redis:  # the default: one Redis for both
        return CliError(
            f"cannot reach Redis at {broker} (the Celery broker): {reason(exc)}; start "
            "redis-server or set FLOWQUEUE_REDIS_URL"
        )
    return CliError(
        f"cannot reach the Celery broker at {broker}: {reason(exc)}; start it or set "
        "CELERY_BROKER_URL (or broker_url in celeryconfig.py)"
    )


def reason(exc: BaseException) -> str:
    """``exc``'s message without a final period (it is followed by what to do)."""
    return str(exc).strip().rstrip(".") or type(exc).__name__


def describe_settings_error(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        field = str(error["loc"][0]) if error["loc"] else ""
        info = Settings.model_fields.get(field)
        secret = info is not None and "SecretStr" in str(info.annotation)
        shown = "" if secret else f"={one_line(repr(error.get('input')))[:80]}"
        why = str(error["msg"]).removeprefix("Value error, ")
        problems.append(f"FLOWQUEUE_{field.upper()}{shown} is not valid: {why}")
    return "; ".join(problems) + "; fix it or unset it to use the default"


def _raised_in(exc: BaseException, prefix: str) -> bool:
    """Whether any frame of ``exc``'s traceback is in a module named ``prefix``..."""
    return any(
        str(frame.f_globals.get("__name__", "")).startswith(prefix)
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


def check_broker(app: Any) -> None:
    """Raise a one-line error unless the Celery broker answers. A write command checks
    first so that a down broker writes nothing at all (``start_run`` would otherwise
    record the run and end it cancelled, with ``BrokerUnavailable``)."""
    if app.conf.task_always_eager:
        return
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(
                max_retries=1, interval_start=0, interval_step=0.2, interval_max=0.2
            )
    except (KeyError, ValueError, ImportError) as exc:  # kombu parses the URL here
        raise ConfigurationError(
            f"the Celery broker URL {redact_url(str(app.conf.broker_url))!r} is not usable "
            f"({exc}); set CELERY_BROKER_URL or FLOWQUEUE_REDIS_URL to redis://host:port/db"
        ) from exc


def redis_unreachable(app: Any) -> str | None:
    """Why the app's Redis does not answer a PING, in one line; None if it does."""
    fq = flowqueue_of(app)
    if fq.connections.memory:
        return None  # a redis-server of the process's own, started on first use
    try:
        fq.coordinator.client.ping()
    except redis.exceptions.RedisError as exc:
        return describe(exc, Urls(app)).message
    return None


class FriendlyGroup(click.Group):
    """A click group whose commands report every failure as one line (see ``describe``).

    ``ctx.obj`` may carry the loaded Celery app as ``.app``, for the URLs in messages.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:
            raise  # click quiets a closed pipe (`flowqueue events RUN | head`)
        except Exception as exc:
            if _interrupted(exc):  # cleanup that failed after Ctrl-C is no error of its own
                raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
            raise describe(exc, Urls(getattr(ctx.obj, "app", None))) from exc


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while handling a KeyboardInterrupt."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__context__
    return False


class OneLineFormatter(logging.Formatter):
    """Log records of a CLI run as one line each, the exception as its type and message."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"flowqueue: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f" ({type(exc).__name__}: {exc})"
        return one_line(text)


def quiet_logging() -> None:
    """Warnings logged during a command (e.g. a step message that could not be sent and
    will be sent again) print as one line; FLOWQUEUE_TRACEBACK=1 keeps the traceback."""
    handler = logging.StreamHandler()
    handler.setLevel(logging.WARNING)
    if not show_tracebacks():
        handler.setFormatter(OneLineFormatter())
    # Does nothing if logging is configured already; the format is for a plain handler.
    logging.basicConfig(format="flowqueue: %(levelname)s: %(message)s", handlers=[handler])
