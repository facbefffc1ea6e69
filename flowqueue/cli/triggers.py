"""``flowqueue triggers``, ``flowqueue schedules`` and ``flowqueue schedule pause|resume
NAME``: the app's start triggers, its schedules' next fire times, pausing a schedule."""

from __future__ import annotations

from datetime import datetime

import click

from flowqueue.cli._app import app_of
from flowqueue.runtime.engine import Flowqueue, flowqueue_of
from flowqueue.runtime.triggers import (
    NEXT_FIRE_TIMES,
    TriggerInfo,
    list_triggers,
    pause_schedule,
)


def _time(value: datetime | None) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds").replace("+00:00", "Z")


def render(trigger: TriggerInfo) -> str:
    fired = trigger.last_fired
    last = "never" if fired is None else f"{_time(fired.at)} run {fired.run_id}"
    return f"{trigger.kind:<8} {trigger.name:<24} {trigger.flow:<16} {trigger.status:<6}  {last}"


def render_schedule(trigger: TriggerInfo) -> str:
    nexts = ", ".join(_time(t) for t in trigger.next_fire_times) or "-"
    when = f"{trigger.cron} ({trigger.timezone}, missed: {trigger.missed})"
    return f"{trigger.name:<24} {trigger.flow:<16} {trigger.status:<6}  {when:<44} next {nexts}"


@click.command(name="triggers")
@click.option("--json", "as_json", is_flag=True, help="Print the triggers as JSON lines.")
@click.pass_context
def triggers(ctx: click.Context, as_json: bool) -> None:
    """List the app's start triggers: schedules, event triggers (on_event), webhooks.

    A line is: kind, name, flow, status (active or paused), last firing and its run."""
    for trigger in list_triggers(flowqueue_of(app_of(ctx))):
        click.echo(trigger.model_dump_json() if as_json else render(trigger))


@click.command(name="schedules")
@click.option(
    "--next", "count", default=NEXT_FIRE_TIMES, show_default=True, type=click.IntRange(1, 100)
)
@click.option("--json", "as_json", is_flag=True, help="Print the schedules as JSON lines.")
@click.pass_context
def schedules(ctx: click.Context, count: int, as_json: bool) -> None:
    """List the app's schedules with their next fire times (UTC; none while paused).

    A line is: name, flow, status, cron (time zone, missed policy), next fire times."""
    found = [t for t in list_triggers(flowqueue_of(app_of(ctx)), count) if t.kind == "schedule"]
    for trigger in found:
        click.echo(trigger.model_dump_json() if as_json else render_schedule(trigger))


@click.group(name="schedule")
def schedule() -> None:
    """Pause or resume a schedule at run time (recorded in the trigger registry)."""


def _change(ctx: click.Context, name: str, pause: bool) -> None:
    fq: Flowqueue = flowqueue_of(app_of(ctx))
    word = "paused" if pause else "resumed"
    changed = pause_schedule(fq, name, pause)
    click.echo(f"{word} {name}" if changed else f"{name} was {word} already")


@schedule.command(name="pause")
@click.argument("name")
@click.pass_context
def pause(ctx: click.Context, name: str) -> None:
    """Pause schedule NAME: none of its ticks fires until it is resumed."""
    _change(ctx, name, True)


@schedule.command(name="resume")
@click.argument("name")
@click.pass_context
def resume(ctx: click.Context, name: str) -> None:
    """Resume schedule NAME from now (the ticks of the pause never fire)."""
    _change(ctx, name, False)


COMMANDS = (triggers, schedules, schedule)
