"""The app a ``flowqueue`` command works on: ``-A module:attribute``, or flowqueue's
default app, loaded once per command on first use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click
from celery.utils.imports import symbol_by_name

from flowqueue.cli._friendly import one_line
from flowqueue.runtime.app import default_app
from flowqueue.runtime.engine import flowqueue_of


@dataclass
class CliState:
    app_path: str | None
    app: Any = None


def load_app(path: str | None) -> Any:
    if path is None:
        return default_app()
    try:
        app = symbol_by_name(path)
    except Exception as exc:  # the module's own import errors too: one line, not a traceback
        raise click.BadParameter(
            one_line(f"cannot load {path!r}: {type(exc).__name__}: {exc}"), param_hint="--app"
        ) from None
    flowqueue_of(app)  # a clear error if flowqueue is not installed on it
    return app


def app_of(ctx: click.Context) -> Any:
    state: CliState = ctx.obj
    if state.app is None:
        state.app = load_app(state.app_path)
    return state.app
