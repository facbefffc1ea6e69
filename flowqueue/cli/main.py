"""The ``flowqueue`` command: list flows, start runs, follow and inspect them.

Every failure prints one line and exits non-zero (``flowqueue.cli._friendly``).

Exit status: 0 success (a followed run completed); 1 a failure (bad input, unknown run
or flow, unreachable Redis or broker; a followed run failed or was cancelled); 2 a usage
error or an unexpected one; 124 ``--timeout`` passed first; 130 interrupted (Ctrl-C)."""

from __future__ import annotations

import json
import math
import os
import sys
from datetime import datetime
from typing import Any

import click
import pydantic_core

from flowqueue.authoring.flows import FlowInfo
from flowqueue.backend.checks import check_cursor
from flowqueue.cli._app import CliState, app_of
from flowqueue.cli._follow import TIMEOUT_HELP, follow, warn
from flowqueue.cli._friendly import (
    FriendlyGroup,
    check_broker,
    one_line,
    quiet_logging,
    redis_unreachable,
)
from flowqueue.cli._moments import MOMENT
from flowqueue.cli.dev import dev
from flowqueue.cli.export import export
from flowqueue.cli.gc import gc
from flowqueue.cli.triggers import COMMANDS as TRIGGER_COMMANDS
from flowqueue.model.reducer import AwaitInfo, RunState, RunStatus
from flowqueue.model.validation import MAX_JSON_DEPTH
from flowqueue.runtime.client import cancel as cancel_run
from flowqueue.runtime.client import (
    first_event,
    get_run,
    input_schema,
    list_flows,
    list_runs,
    read_events,
    start_flow,
    steps_still_to_run,
    unserved_warning,
)
from flowqueue.runtime.client import rerun as rerun_run
from flowqueue.runtime.client import resume as resume_trigger
from flowqueue.runtime.client import retry as retry_run
from flowqueue.runtime.client import signal as send_signal
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.runtime.queries import RunQuery, query_runs

MAX_TIMEOUT = 365 * 86_400.0  # a year; longer is no timeout at all: leave it out


class Seconds(click.FloatRange):
    """A positive, finite number of seconds (FloatRange lets NaN through: it compares
    false with both bounds)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if math.isnan(seconds):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds


TIMEOUT = Seconds(min=0, min_open=True, max=MAX_TIMEOUT)


class Utf8Text(click.types.StringParamType):
    """A string argument that is UTF-8 text (argv bytes that are not arrive as lone
    surrogates, which no Redis key, JSON or terminal can carry)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("is not valid UTF-8 text; check the terminal's encoding", param, ctx)
        return text


TEXT = Utf8Text()


def parse_json(value: str | None, what: str) -> Any:
    """``value`` parsed as JSON, or a one-line usage error whatever the text (deep
    nesting, lone surrogate escapes, NaN and bytes that are not UTF-8 included)."""
    if value is None:
        return None
    try:
        return pydantic_core.from_json(value.encode("utf-8"), allow_inf_nan=False)
    except UnicodeEncodeError:
        problem = "is not UTF-8 text"
    except ValueError as exc:
        problem = f"is not valid JSON ({exc})"
        if "surrogate" in str(exc) or "hex escape" in str(exc):
            problem += "; \\ud800-\\udfff escapes must come in pairs (a lone one is not text)"
        elif "recursion limit" in str(exc):
            problem += f"; it nests too deeply (the limit is {MAX_JSON_DEPTH} levels)"
        elif _parses_with_nan(value):
            problem += "; NaN and Infinity are not JSON: send a finite number or null"
    raise click.BadParameter(one_line(problem), param_hint=what)


def _parses_with_nan(value: str) -> bool:
    try:
        pydantic_core.from_json(value, allow_inf_nan=True)
    except ValueError:
        return False
    return True


@click.group(cls=FriendlyGroup)
@click.version_option(package_name="flowqueue", message="flowqueue %(version)s")
@click.option(
    "-A",
    "--app",
    "app_path",
    type=TEXT,
    envvar="FLOWQUEUE_APP",
    help="Celery app with flowqueue installed, as module:attribute (default: flowqueue.app).",
)
@click.pass_context
def main(ctx: click.Context, app_path: str | None) -> None:
    """flowqueue: event-sourced flows on Celery.

    Exit status: 0 done (a followed run completed); 1 a failure, said in one line (bad
    input, an unknown run or flow, Redis or the broker unreachable; a followed run
    failed or was cancelled); 2 a usage error; 124 --timeout passed before the run
    ended; 130 interrupted."""
    # Like `celery -A`, find the project's modules (workers/, celeryconfig) from here.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    if ctx.invoked_subcommand != "api":  # the API server logs its own way
        quiet_logging()
    ctx.obj = CliState(app_path)


def writing(ctx: click.Context, value_json: str | None, option: str) -> tuple[Any, Any]:
    """The app and the parsed JSON ``option`` of a command that writes, once the broker
    answers (a down broker writes nothing at all)."""
    app, value = app_of(ctx), parse_json(value_json, option)
    check_broker(app)
    return app, value


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the flows as JSON.")
@click.pass_context
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
    lines = [info.name]
    for step in info.steps:
        mark = "entry" if step.entry else "on " + " + ".join(step.subscribes)
        if step.on_event:
            mark += ", started by signal " + ", ".join(step.on_event)
        lines.append(f"  {step.name:<16} {mark}")
        for event in step.emits:
            targets = [e.target for e in info.edges if (e.source, e.event) == (step.name, event)]
            lines.append(f"    emits {event} -> {', '.join(targets) or '(none)'}")
    return "\n".join(lines)


@main.command()
@click.argument("flow", type=TEXT)
@click.option("--input", "input_json", type=TEXT, help="The run's input as JSON.")
@click.option(
    "--idempotency-key",
    type=TEXT,
    help="A start of FLOW with the same key within FLOWQUEUE_IDEMPOTENCY_SECONDS prints "
    "the first one's run id and starts nothing.",
)
@click.option("--wait", is_flag=True, help="Follow the run live until it ends.")
@click.option("--timeout", type=TIMEOUT, metavar="SECONDS", help=f"With --wait: {TIMEOUT_HELP}")
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.option(
    "--help-input",
    is_flag=True,
    help="Print the JSON Schema FLOW's input must fit and exit; starts nothing.",
)
@click.pass_context
def start(
    ctx: click.Context,
    flow: str,
    input_json: str | None,
    idempotency_key: str | None,
    wait: bool,
    timeout: float | None,
    as_json: bool,
    help_input: bool,
) -> None:
    """Start a run of FLOW and print its id. With --wait, follow it: exit 0 if it
    completed, 1 if it failed or was cancelled, 124 if --timeout passed first.

    A line on stderr warns when no live worker serves a step of FLOW."""
    if help_input:
        schema = input_schema(flow, app=app_of(ctx))
        click.echo(json.dumps({} if schema is None else schema, indent=2))
        if schema is None:
            warn(f"no entry step of {flow} declares an input model: any JSON value will do")
        return
    check_wait(wait, timeout)
    app, value = writing(ctx, input_json, "--input")
    run_id = start_flow(flow, value, idempotency_key=idempotency_key, app=app)
    started(app, flow, {"run_id": run_id}, as_json, wait, timeout)


def check_wait(wait: bool, timeout: float | None) -> None:
    if timeout is not None and not wait:
        raise click.UsageError("--timeout needs --wait (it bounds the wait for the run's end)")


def started(
    app: Any, flow: str, shown: dict[str, str], as_json: bool, wait: bool, timeout: float | None
) -> None:
    """A run was started: its id (or ``shown`` as JSON), a warning if no live worker
    serves the flow, then with ``wait`` the run followed to its end."""
    run_id = shown["run_id"]
    click.echo(json.dumps(shown) if as_json else run_id)
    warn(unserved_warning(flow, app=app))
    if wait:
        follow(app, run_id, as_json, timeout=timeout)


@main.command()
@click.argument("run_id", type=TEXT)
@click.option("--json", "as_json", is_flag=True, help="Print the RunState as JSON.")
@click.option(
    "--at",
    type=TEXT,
    help="Time travel: the state just after this event id (see flowqueue events RUN).",
)
@click.pass_context
def show(ctx: click.Context, run_id: str, as_json: bool, at: str | None) -> None:
    """Show a run's state, reduced from its log (with --at, from its log up to an event)."""
    app = app_of(ctx)
    first_event(run_id, app=app)  # an unknown run: the same answer as every command's
    state = get_run(run_id, at=at, app=app)
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
    if state.rerun_of is not None:
        lines.append(f"rerun of {state.rerun_of}")
    if state.reruns:
        lines.append(f"reruns   {', '.join(state.reruns)}")
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
@click.argument("run_id", type=TEXT)
@click.option("--after", type=TEXT, help="Only events after this event id.")
@click.pass_context
def events(ctx: click.Context, run_id: str, after: str | None) -> None:
    """Print a run's events as JSON lines."""
    app = app_of(ctx)
    first_event(run_id, app=app)  # an unknown run: the same answer as every command's
    for event in read_events(run_id, after=after, app=app):
        click.echo(event.to_json().decode())


@main.command()
@click.argument("run_id", type=TEXT)
@click.option("--reason", default="", type=TEXT, help="Why (recorded in flow.cancelled).")
@click.pass_context
def cancel(ctx: click.Context, run_id: str, reason: str) -> None:
    """Cancel a run: no step of it starts afterwards; its timers and waits are dropped."""
    app = app_of(ctx)
    check_broker(app)
    queued = cancel_run(run_id, reason, app=app)
    revoked = f"; revoked queued steps: {', '.join(queued)}" if queued else ""
    click.echo(f"cancelled {run_id}{revoked}")


@main.command()
@click.argument("run_id", type=TEXT)
@click.option("--wait", is_flag=True, help="Follow the new run live until it ends.")
@click.option("--timeout", type=TIMEOUT, metavar="SECONDS", help=f"With --wait: {TIMEOUT_HELP}")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def rerun(
    ctx: click.Context, run_id: str, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """Start a new run of RUN_ID's flow with its input and print the new id. Both logs
    link them: the new flow.started has rerun_of, RUN_ID's log a flow.rerun event."""
    check_wait(wait, timeout)
    app, _ = writing(ctx, None, "")
    flow = first_event(run_id, app=app).flow  # an unknown run: the one answer
    new_id = rerun_run(run_id, app=app)
    started(app, flow, {"run_id": new_id, "rerun_of": run_id}, as_json, wait, timeout)


@main.command()
@click.argument("run_id", type=TEXT)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def retry(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Run a failed run again under its id and log: each failed step (and each step the
    failure cancelled) gets one more attempt with its recorded input. A run that is not
    failed is refused and nothing is written."""
    app, _ = writing(ctx, None, "")
    steps = retry_run(run_id, app=app)
    if as_json:
        click.echo(json.dumps({"run_id": run_id, "steps": steps}))
    else:
        click.echo(f"retried {run_id}: sent {', '.join(steps) or 'no step'} again")


@main.command()
@click.argument("name", type=TEXT)
@click.option("--data", "data_json", type=TEXT, help="The signal's payload as JSON.")
@click.option(
    "--idempotency-key",
    type=TEXT,
    help="A signal NAME with the same key within FLOWQUEUE_IDEMPOTENCY_SECONDS prints the "
    "first one's answer and writes nothing.",
)
@click.pass_context
def signal(
    ctx: click.Context, name: str, data_json: str | None, idempotency_key: str | None
) -> None:
    """Send signal NAME, an event from outside any run: it wakes the waits it matches and
    starts a run of each flow whose entry step declares on_event=NAME (one line each:
    flow, run id)."""
    app, value = writing(ctx, data_json, "--data")
    sent = send_signal(name, value, idempotency_key=idempotency_key, app=app)
    if sent.replayed:  # nothing was sent or started now: say what the first call did
        click.echo(f"{name} was sent before with this idempotency key; nothing sent now")
        click.echo(f"it woke {sent.woken} waiting step{'s' if sent != 1 else ''}")
        verb = "it started"
    else:
        click.echo(f"sent {name}; woke {sent.woken} waiting step{'s' if sent != 1 else ''}")
        verb = "started"
    for flow, run_id in sent.runs.items():
        click.echo(f"{verb} {flow} {run_id}")


@main.command()
@click.argument("trigger_id", type=TEXT)
@click.option(
    "--data", "data_json", type=TEXT, help="The payload the waiting step receives, as JSON."
)
@click.pass_context
def resume(ctx: click.Context, trigger_id: str, data_json: str | None) -> None:
    """Resume the step waiting on TRIGGER_ID (from its step.await.trigger event).

    A trigger resumes its await once; a second resume says what happened to it."""
    app, value = writing(ctx, data_json, "--data")
    click.echo(f"resumed {resume_trigger(trigger_id, value, app=app)}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to bind."
)
@click.option("--log-level", default="info", show_default=True, help="uvicorn's log level.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Processes sharing the port, each with its own Redis Pub/Sub connection.",
)
@click.pass_context
def api(ctx: click.Context, host: str, port: int, log_level: str, workers: int) -> None:
    """Serve the HTTP API (OpenAPI at /docs); run as many processes as you like."""
    try:  # the API is an extra: without it the rest of the CLI still works
        from flowqueue.api.server import serve
    except ImportError as exc:
        raise click.ClickException(
            f"the API needs its extra ({exc.name} is missing): pip install 'flowqueue[api]'"
        ) from None
    app = app_of(ctx)
    unreachable = redis_unreachable(app)
    if unreachable is not None:  # serve anyway: it answers once Redis is up
        warn(f"{unreachable}; serving anyway, /healthz answers 503 until Redis answers")
    state: CliState = ctx.obj
    serve(app, host, port, log_level, workers=workers, app_path=state.app_path)


@main.command()
@click.argument("flow", type=TEXT, required=False)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--before", type=TEXT, help="Only runs older than this run id (paging).")
@click.option("--status", type=click.Choice([s.value for s in RunStatus]), help="Its status.")
@click.option("--since", type=MOMENT, help="Started at or after: 1h, 30m, 2d or ISO 8601.")
@click.option("--until", type=MOMENT, help="Started before: 1h, 30m, 2d or ISO 8601.")
@click.option("--step", type=TEXT, help="This step of it has started.")
@click.option("--error", type=TEXT, help="It failed with this text in its error (any case).")
@click.option("--state", "state", type=TEXT, help="Its state holds KEY, or KEY=JSON (that value).")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON lines.")
@click.pass_context
def runs(
    ctx: click.Context,
    flow: str | None,
    limit: int,
    before: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    step: str | None,
    error: str | None,
    state: str | None,
    as_json: bool,
) -> None:
    """List runs newest first: FLOW's, or without FLOW those of every flow; the options
    keep those that match them all.

    A line is: run id, flow, status, start time. When more may follow, the last line (on
    stderr) gives the --before that goes on."""
    app = app_of(ctx)
    filters = {"status": status, "since": since, "until": until, "step": step, "error": error}
    if state is None and all(value is None for value in filters.values()):
        found, next_before = list_runs(flow, limit=limit, before=before, app=app), None
    else:
        if flow is not None:
            flowqueue_of(app).flows.flow(flow)  # UnknownFlow: one line
        page = query_runs(run_query(flow, limit, before, state, filters), app=app)
        found, next_before = page.runs, page.next_before
    for summary in found:
        if as_json:
            click.echo(summary.model_dump_json())
            continue
        started = summary.started_at.isoformat(timespec="seconds") if summary.started_at else "-"
        click.echo(f"{summary.run_id}  {summary.flow:<16} {summary.status:<10} {started}")
    if next_before is not None:
        click.echo(f"more: --before {next_before}", err=True)


def run_query(
    flow: str | None, limit: int, before: str | None, state: str | None, filters: dict[str, Any]
) -> RunQuery:
    """The query the options say."""
    stated = RunQuery.state_filter(state) if state is not None else {}
    flows = [flow] if flow else []
    return RunQuery(flows=flows, limit=limit, before=before, **stated, **filters)


@main.command()
@click.argument("run_id", type=TEXT)
@click.option("--after", type=TEXT, help="Start after this event id (default: the whole log).")
@click.option("--timeout", type=TIMEOUT, metavar="SECONDS", help=TIMEOUT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print events as JSON lines.")
@click.pass_context
def tail(
    ctx: click.Context, run_id: str, after: str | None, timeout: float | None, as_json: bool
) -> None:
    """Follow a run's timeline live until it ends: exit 0 if it completed, 1 if it
    failed or was cancelled, 124 if --timeout passed first.

    A line on stderr warns when no live worker serves a step the run still needs."""
    app = app_of(ctx)
    check_cursor("after", after)  # before the warning: a bad cursor is the one line
    first_event(run_id, app=app)
    state = get_run(run_id, app=app)
    warn(unserved_warning(state.flow, steps_still_to_run(state, app=app), app=app))
    follow(app, run_id, as_json, after, timeout)


main.add_command(gc)
main.add_command(export)
main.add_command(dev)
for command in TRIGGER_COMMANDS:  # triggers, schedules, schedule pause|resume
    main.add_command(command)
