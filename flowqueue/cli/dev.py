"""``flowqueue dev``: Redis, a worker that reloads on code changes, the API with the
dashboard, Flower and example runs, in one terminal (``flowqueue.devtools.dev``)."""

from __future__ import annotations

import math

import click

from flowqueue.cli._app import CliState
from flowqueue.devtools.dev import DevError, DevOptions, run_dev

PORT = click.IntRange(0, 65535)


@click.command(name="dev")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=PORT,
    help="Port of the API and the dashboard (0: any free port); taken: an error.",
)
@click.option(
    "--flower-port",
    default=5555,
    show_default=True,
    type=PORT,
    help="Port of Flower, when it is installed (0: any free port).",
)
@click.option(
    "--redis-url",
    metavar="URL",
    help="The Redis to use (default: FLOWQUEUE_REDIS_URL if set, else an embedded "
    "redis-server on a free port, gone when dev stops).",
)
@click.option(
    "--exit-after",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop cleanly this many seconds after everything is up (for scripts and CI).",
)
@click.option("--no-examples", is_flag=True, help="Start no example runs.")
@click.pass_context
def dev(
    ctx: click.Context,
    port: int,
    flower_port: int,
    redis_url: str | None,
    exit_after: float | None,
    no_examples: bool,
) -> None:
    """Run everything for developing flows until Ctrl-C: Redis, a Celery worker for
    FLOWQUEUE_WORKERS that restarts when one of its files changes, the API with the
    dashboard, Flower when installed, and (with the default workers package) the
    example runs of `make demo`.

    Children's output goes to log files (their folder is printed). Exit status: 0 once
    everything stopped; 1 if something did not start (its log's tail is printed) or a
    process was still running after the stop."""
    if exit_after is not None and math.isnan(exit_after):  # FloatRange lets NaN through
        raise click.BadParameter("is not a number of seconds", param_hint="--exit-after")
    state: CliState = ctx.obj
    options = DevOptions(
        port=port,
        flower_port=flower_port,
        redis_url=redis_url,
        exit_after=exit_after,
        examples=not no_examples,
        app_path=state.app_path,
    )
    try:
        code = run_dev(options)
    except DevError as exc:
        raise click.ClickException(str(exc)) from None
    ctx.exit(code)
