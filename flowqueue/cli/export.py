"""``flowqueue export URL``: every run's lifecycle events, as CloudEvents 1.0, POSTed to
URL until Ctrl-C (runtime/exporter.py says what it promises)."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click
import redis

from flowqueue.cli._app import app_of
from flowqueue.cli._follow import warn
from flowqueue.cli._friendly import redis_unreachable
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.runtime.exporter import Exporter, HttpSink


def headers_of(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    """``--header`` values as a dict; each must be ``Name: value``."""
    out = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{value!r}: write a header as 'Name: value'")
        out[name.strip()] = text.strip()
    return out


@click.command(name="export")
@click.argument("url")
@click.option(
    "--name",
    default="default",
    show_default=True,
    help="The exporter's name: its position is kept under it, so a restart goes on there.",
)
@click.option("--batch", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--batched",
    is_flag=True,
    help="POST each batch as one application/cloudevents-batch+json array (else one "
    "application/cloudevents+json request per event).",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    callback=headers_of,
    help="A request header, 'Name: value' (say, Authorization); repeatable.",
)
@click.pass_context
def export(
    ctx: click.Context, url: str, name: str, batch: int, batched: bool, headers: dict[str, str]
) -> None:
    """POST every run's lifecycle events (flow.* and step.*), as CloudEvents 1.0, to URL.

    In order and at least once: the position is kept in Redis under --name after each
    batch URL took, and a batch it refused (not 2xx) or could not take goes again after a
    pause. Runs until Ctrl-C."""
    app = app_of(ctx)
    sink = HttpSink(url, batched=batched, headers=headers)
    exporter = Exporter(flowqueue_of(app).store, sink, name=name, batch=batch)
    unreachable = redis_unreachable(app)
    if unreachable is not None:
        warn(f"{unreachable}; exporting once Redis answers")
    stop = threading.Event()

    def stopping(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    click.echo(f"exporting to {url} as {name!r}: {where(exporter)}")
    exporter.run(stop)
    click.echo(f"stopped: {where(exporter)}")


def where(exporter: Exporter) -> str:
    """The exporter's position, for a person."""
    try:
        position = exporter.position
    except redis.exceptions.RedisError:
        return "its position is kept in Redis, which does not answer yet"
    return f"exported up to feed position {position}" if position else "nothing exported yet"
