"""The ``flowqueue`` command: list flows, start runs, follow and inspect them."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import click
from celery.utils.imports import symbol_by_name

from flowqueue.client import cancel as cancel_run
from flowqueue.client import emit as emit_event
from flowqueue.client import get_run, list_flows, read_events, start_flow
from flowqueue.client import resume as resume_trigger
from flowqueue.errors import FlowqueueError, UnknownRun
from flowqueue.events import TERMINAL_KINDS, EventKind
from flowqueue.extension import flowqueue_of
from flowqueue.flows import FlowInfo
from flowqueue.ids import stream_id_ms
from flowqueue.reducer import AwaitInfo, RunState, RunStatus
from flowqueue.timeline import format_line

P = ParamSpec("P")
R = TypeVar("R")


def friendly(command: Callable[P, R]) -> Callable[P, R]:
    """Turn flowqueue's errors into a one-line message and exit status 1."""

    @wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except FlowqueueError as exc:
            raise click.ClickException(str(exc)) from None

    return run


def load_app(path: str | None) -> Any:
    if path is None:
        from flowqueue.celery_app import default_app

        return default_app()
    try:
        app = symbol_by_name(path)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load {path!r}: {exc}", param_hint="--app") from None
    flowqueue_of(app)  # a clear error if flowqueue is not installed on it
    return app


def parse_json(value: str | None, what: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"not valid JSON ({exc.msg} at {exc.pos})", param_hint=what
        ) from None


@click.group()
@click.option(
    "-A",
    "--app",
    "app_path",
    envvar="FLOWQUEUE_APP",
    help="Celery app with flowqueue installed, as module:attribute (default: flowqueue.app).",
)
@click.pass_context
def main(ctx: click.Context, app_path: str | None) -> None:
    """flowqueue: event-sourced flows on Celery."""
    # Like `celery -A`, find the project's modules (workers/, celeryconfig) from here.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    ctx.obj = app_path


def app_of(ctx: click.Context) -> Any:
    return load_app(ctx.obj)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the flows as JSON.")
@click.pass_context
@friendly
def flows(ctx: click.Context, as_json: bool) -> None:
    """List flows with their steps and the events between them."""
    infos = list_flows(app=app_of(ctx))
    if as_json:
        click.echo(json.dumps([info.model_dump() for info in infos], indent=2))
        return
    if not infos:
        click.echo("no flows found (is FLOWQUEUE_WORKERS right?)")
    for info in infos:
        click.echo(render_flow(info))


def render_flow(info: FlowInfo) -> str:
    lines = [f"{info.name}"]
    for step in info.steps:
        mark = "entry" if step.entry else "on " + " + ".join(step.subscribes)
        lines.append(f"  {step.name:<16} {mark}")
        targets: dict[str, list[str]] = {}
        for edge in info.edges:
            if edge.source == step.name:
                targets.setdefault(edge.event, []).append(edge.target)
        for event in step.emits:
            lines.append(f"    emits {event} -> {', '.join(targets.get(event, [])) or '(none)'}")
    return "\n".join(lines)


@main.command()
@click.argument("flow")
@click.option("--input", "input_json", help="The run's input as JSON.")
@click.option("--wait", is_flag=True, help="Follow the run live until it ends.")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.pass_context
@friendly
def start(ctx: click.Context, flow: str, input_json: str | None, wait: bool, as_json: bool) -> None:
    """Start a run of FLOW and print its id (with --wait: exit 0 if it completed)."""
    app = app_of(ctx)
    run_id = start_flow(flow, parse_json(input_json, "--input"), app=app)
    click.echo(json.dumps({"run_id": run_id}) if as_json else run_id)
    if wait:
        status = follow(app, run_id, as_json)
        sys.exit(0 if status == EventKind.FLOW_COMPLETED else 1)


def follow(app: Any, run_id: str, as_json: bool, after: str | None = None) -> str:
    """Print the run's events live until its terminal event; return that event's kind.
    The subscription resumes after the last event printed when Redis drops the
    connection, so nothing is skipped or printed twice."""
    origin: int | None = None
    for event in flowqueue_of(app).store.subscribe(run_id, after=after):
        origin = stream_id_ms(event.id) if origin is None else origin
        click.echo(event.to_json().decode() if as_json else format_line(event, origin))
        if event.kind in TERMINAL_KINDS:
            return event.kind
    return ""


@main.command()
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the RunState as JSON.")
@click.pass_context
@friendly
def show(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run's state, reduced from its log."""
    state = get_run(run_id, app=app_of(ctx))
    click.echo(state.model_dump_json(indent=2) if as_json else render_run(state))


def describe_await(info: AwaitInfo) -> str:
    if info.kind == "time":
        return f"time {info.until}"
    timeout = f" (timeout {info.timeout_at})" if info.timeout_at else ""
    if info.kind == "event":
        match = f" matching {json.dumps(info.match)}" if info.match else ""
        return f"event {info.name}{match}{timeout}"
    return f"trigger {info.trigger_id}{timeout}"


def render_run(state: RunState) -> str:
    lines = [
        f"run      {state.run_id}",
        f"flow     {state.flow}",
        f"status   {state.status.value}"
        + (f" in {state.duration_ms} ms" if state.duration_ms is not None else ""),
    ]
    if state.status is RunStatus.FAILED and state.error is not None:
        lines.append(f"error    {state.error.type}: {state.error.message}")
    lines.append("steps")
    for step in state.steps.values():
        took = f"{step.duration_ms} ms" if step.duration_ms is not None else ""
        lines.append(f"  {step.name:<16} {step.status.value:<10} x{step.attempts} {took}".rstrip())
        if step.awaiting is not None:
            lines.append(f"    waits for {describe_await(step.awaiting)}")
    if state.state:
        lines.append("state")
        lines += [f"  {key} = {json.dumps(value)}" for key, value in state.state.items()]
    if state.logs:
        lines.append("logs")
        lines += [f"  [{e.level}] {e.step or '-'}: {e.msg}" for e in state.logs]
    return "\n".join(lines)


@main.command()
@click.argument("run_id")
@click.option("--after", help="Only events after this event id.")
@click.pass_context
@friendly
def events(ctx: click.Context, run_id: str, after: str | None) -> None:
    """Print a run's events as JSON lines."""
    for event in read_events(run_id, after=after, app=app_of(ctx)):
        click.echo(event.to_json().decode())


@main.command()
@click.argument("run_id")
@click.option("--reason", default="", help="Why (recorded in flow.cancelled).")
@click.pass_context
@friendly
def cancel(ctx: click.Context, run_id: str, reason: str) -> None:
    """Cancel a run: no step of it starts afterwards; its timers and waits are dropped."""
    queued = cancel_run(run_id, reason, app=app_of(ctx))
    revoked = f"; revoked queued steps: {', '.join(queued)}" if queued else ""
    click.echo(f"cancelled {run_id}{revoked}")


@main.command()
@click.argument("name")
@click.option("--data", "data_json", help="The event's payload as JSON.")
@click.pass_context
@friendly
def emit(ctx: click.Context, name: str, data_json: str | None) -> None:
    """Emit event NAME from outside any run (wakes the waits it matches)."""
    woken = emit_event(name, parse_json(data_json, "--data"), app=app_of(ctx))
    click.echo(f"emitted {name}; woke {woken} waiting step{'s' if woken != 1 else ''}")


@main.command()
@click.argument("trigger_id")
@click.option("--data", "data_json", help="The payload the waiting step receives, as JSON.")
@click.pass_context
@friendly
def resume(ctx: click.Context, trigger_id: str, data_json: str | None) -> None:
    """Resume the step waiting on TRIGGER_ID (from its step.await.trigger event)."""
    run_id = resume_trigger(trigger_id, parse_json(data_json, "--data"), app=app_of(ctx))
    click.echo(f"resumed {run_id}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to bind.")
@click.option("--log-level", default="info", show_default=True, help="uvicorn's log level.")
@click.pass_context
@friendly
def api(ctx: click.Context, host: str, port: int, log_level: str) -> None:
    """Serve the HTTP API (OpenAPI at /docs); run as many processes as you like."""
    try:
        import uvicorn

        from flowqueue.api import create_api
    except ImportError as exc:
        raise click.ClickException(
            f"the API needs its extra ({exc.name} is missing): pip install 'flowqueue[api]'"
        ) from None
    # Open SSE streams would hold a graceful shutdown forever; their clients reconnect
    # elsewhere with Last-Event-ID and lose nothing.
    uvicorn.run(
        create_api(app_of(ctx)),
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=5,
    )


@main.command()
@click.argument("flow")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--before", help="Only runs older than this run id (paging).")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON lines.")
@click.pass_context
@friendly
def runs(ctx: click.Context, flow: str, limit: int, before: str | None, as_json: bool) -> None:
    """List FLOW's runs, newest first."""
    fq = flowqueue_of(app_of(ctx))
    fq.registry.flow(flow)  # an unknown flow is a clear error, not an empty list
    for summary in fq.store.list_runs(flow, limit=limit, before=before):
        if as_json:
            click.echo(summary.model_dump_json())
            continue
        started = summary.started_at.isoformat(timespec="seconds") if summary.started_at else "-"
        click.echo(f"{summary.run_id}  {summary.status:<10} {started}")


@main.command()
@click.argument("run_id")
@click.option("--after", help="Start after this event id (default: the whole log).")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.pass_context
@friendly
def tail(ctx: click.Context, run_id: str, after: str | None, as_json: bool) -> None:
    """Follow a run's timeline live until it ends (exit 0 if it completed)."""
    app = app_of(ctx)
    if not flowqueue_of(app).store.read(run_id, limit=1):
        raise UnknownRun(f"no run {run_id!r}; `flowqueue runs FLOW` lists the runs of a flow.")
    status = follow(app, run_id, as_json, after)
    sys.exit(0 if status == EventKind.FLOW_COMPLETED else 1)
