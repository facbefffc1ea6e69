"""Following a run live from the command line (``start --wait``, ``tail``): its timeline
printed as it happens, an optional deadline, and a warning when no worker would run it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any, NoReturn

import click

from flowqueue.backend.redis.store import AsyncRedisEventStore
from flowqueue.cli._friendly import EXIT_FAILED, WaitTimedOut
from flowqueue.model.events import TERMINAL_KINDS, Event, EventKind
from flowqueue.model.lines import timeline
from flowqueue.runtime.engine import flowqueue_of

TIMEOUT_HELP = (
    "Give up after this many seconds if the run has not ended (exit status 124; the run goes on)."
)


def warn(warning: str | None) -> None:
    """``warning`` as one line on stderr (nothing for None); the command goes on."""
    if warning is not None:
        click.echo(f"warning: {warning}", err=True)


def follow(
    app: Any, run_id: str, as_json: bool, after: str | None = None, timeout: float | None = None
) -> NoReturn:
    """Print the run's events live until its terminal event; exit 0 if it completed, 1
    if it failed or was cancelled, 124 (``WaitTimedOut``) if ``timeout`` seconds pass
    first. The subscription resumes after the last event printed when Redis drops the
    connection, so nothing is skipped or printed twice."""
    last = asyncio.run(_print_until_ended(app, run_id, as_json, after, timeout))
    raise SystemExit(0 if last == EventKind.FLOW_COMPLETED else EXIT_FAILED)


async def _print_until_ended(
    app: Any, run_id: str, as_json: bool, after: str | None, timeout: float | None
) -> str:
    """The kind of the last event printed (the terminal one, unless the log ends first)."""
    fq = flowqueue_of(app)
    store = AsyncRedisEventStore(fq.backend_settings(), archive=fq.open_archive())
    arrived: list[Event] = []
    lines = timeline(_handed_over(arrived))
    last = ""
    try:
        async with (
            asyncio.timeout(timeout),
            contextlib.aclosing(store.subscribe(run_id, after)) as events,
        ):
            async for event in events:
                arrived.append(event)
                _, line = next(lines)
                click.echo(event.to_json().decode() if as_json else line)
                last = event.kind
                if last in TERMINAL_KINDS:
                    break
    except TimeoutError:
        raise WaitTimedOut(run_id, timeout or 0.0, last) from None
    finally:
        await store.aclose()
    return last


def _handed_over(arrived: list[Event]) -> Iterator[Event]:
    """Each event appended to ``arrived``, as it is appended: ``timeline`` reads one
    event per line it is asked for, so it numbers a live stream as it numbers a log."""
    while True:
        yield arrived.pop(0)
