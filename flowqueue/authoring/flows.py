"""Flows as graphs of steps, derived from the Celery app's task registry.

A step is a Celery task whose class carries flow options (``flow``, ``entry``,
``on_event``, ``subscribes``, ``emits``, ``input_model``); nothing is registered anywhere
else, so the flows an app knows are exactly the step tasks Celery knows.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from celery.utils.imports import cwd_in_path
from pydantic import BaseModel, Field, ValidationError

from flowqueue.authoring.awaits import AwaitSpec
from flowqueue.authoring.retry import Retry
from flowqueue.authoring.schedules import Schedule
from flowqueue.authoring.step import FlowTask
from flowqueue.authoring.webhooks import Webhook
from flowqueue.backend.coordinator import Candidate
from flowqueue.backend.redis.triggers import Declaration
from flowqueue.errors import ConfigurationError, FlowDefinitionError, InvalidInput, UnknownFlow
from flowqueue.model.schedules import ScheduleSpec
from flowqueue.model.validation import check_identifier


@dataclass(frozen=True)
class StepDef:
    name: str  # the step's name inside its flows (the function name by default)
    task_name: str  # the Celery task name
    flows: tuple[str, ...]
    entry: bool
    subscribes: tuple[str, ...]
    emits: tuple[str, ...]
    input_model: type[BaseModel] | None = None
    retry: Retry | None = None
    await_before: AwaitSpec | None = None
    await_after: AwaitSpec | None = None
    on_event: tuple[str, ...] = ()  # signals that start a run (an entry step's only)
    webhook: Webhook | None = None  # the webhook that starts a run (an entry step's only)
    schedules: tuple[Schedule, ...] = ()  # schedules that start runs (an entry step's only)

    @classmethod
    def from_task(cls, task: Any) -> StepDef:
        flows = (task.flow,) if isinstance(task.flow, str) else tuple(task.flow or ())
        where = f"step task {task.name!r}"
        if not flows:
            raise FlowDefinitionError(f"{where} names no flow; pass flow='name' to @step.")
        subscribes, emits = _names(task.subscribes, where), _names(task.emits, where)
        on_event = _names(task.on_event, where)
        if on_event and not task.entry:
            raise FlowDefinitionError(
                f"{where} declares on_event={list(on_event)} but is not an entry step; a "
                "signal starts a run at its entry step, so pass entry=True (a step that "
                "reacts to an emission inside its run takes subscribes=[...] instead)."
            )
        if task.entry and subscribes:
            raise FlowDefinitionError(
                f"{where} is an entry step and also subscribes to {list(subscribes)}; an entry "
                "step starts the run, so give the subscribing part its own step."
            )
        if not task.entry and not subscribes:
            raise FlowDefinitionError(
                f"{where} is neither an entry step nor subscribed to any event, so it would "
                "never run; pass entry=True or subscribes=[...]."
            )
        name = task.step_name or task.run.__name__
        try:
            check_identifier("step name", name)
            for flow in flows:
                check_identifier("flow name", flow)
            for event in on_event:
                check_identifier("on_event name", event)
        except Exception as exc:
            raise FlowDefinitionError(f"{where}: {exc}") from None
        webhook = getattr(task, "webhook", None)  # duck-typed tasks may not declare it
        _check_webhook(webhook, where, bool(task.entry), flows)
        schedules = tuple(getattr(task, "schedules", ()))  # duck-typed tasks may not declare it
        _check_schedules(schedules, where, bool(task.entry))
        retry, awaits = task.flow_retry, (task.await_before, task.await_after)
        if not isinstance(retry, Retry | None):
            raise FlowDefinitionError(f"{where}: retry= takes a flowqueue.Retry(...).")
        for spec in awaits:
            if not isinstance(spec, AwaitSpec | None):
                raise FlowDefinitionError(
                    f"{where}: await_before / await_after take Sleep(...), WaitForEvent(...) "
                    f"or WaitForTrigger(...) from flowqueue, not {spec!r}."
                )
        return cls(
            name,
            task.name,
            flows,
            bool(task.entry),
            subscribes,
            emits,
            task.input_model,
            retry,
            *awaits,
            on_event=on_event,
            webhook=webhook,
            schedules=schedules,
        )

    def parse_input(self, value: Any, flow: str) -> Any:
        """``value`` as this step's ``input_model`` (as it is without one)."""
        if self.input_model is None:
            return value
        try:
            return self.input_model.model_validate(value)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'input'}: {error['msg']}"
                for error in exc.errors(include_url=False)[:10]
            )
            raise InvalidInput(
                f"input of step {self.name!r} of flow {flow!r} does not fit "
                f"{self.input_model.__name__}: {problems}",
                flow=flow,
                step=self.name,
            ) from None


def _check_webhook(webhook: Any, where: str, entry: bool, flows: tuple[str, ...]) -> None:
    if webhook is None:
        return
    if not isinstance(webhook, Webhook):
        raise FlowDefinitionError(f"{where}: webhook= takes a flowqueue.Webhook(...).")
    if not entry:
        raise FlowDefinitionError(
            f"{where} declares webhook {webhook.name!r} but is not an entry step; a webhook "
            "starts a run at its entry step, so pass entry=True."
        )
    if len(flows) > 1:
        raise FlowDefinitionError(
            f"{where} declares webhook {webhook.name!r} in flows {list(flows)}; a webhook "
            "starts one flow, so declare it on a step of one flow."
        )


def _check_schedules(schedules: Sequence[Any], where: str, entry: bool) -> None:
    for schedule in schedules:
        if not isinstance(schedule, Schedule):
            raise FlowDefinitionError(f"{where}: schedule= takes flowqueue.Schedule(...) or a list")
    if schedules and not entry:
        raise FlowDefinitionError(
            f"{where} declares a schedule but is not an entry step; a schedule starts a run "
            "at its entry step, so pass entry=True."
        )


def _names(value: str | Sequence[str] | None, where: str) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value or ())
    for name in names:
        if not isinstance(name, str) or not name:
            raise FlowDefinitionError(f"{where}: event names must be non-empty strings.")
    return names


def _display_order(steps: Sequence[StepDef]) -> Callable[[StepDef], tuple[Any, ...]]:
    """Sort key: steps by distance from the entry (via declared emits), then by name with
    numbers compared as numbers (pick_2 before pick_10)."""
    emitters: dict[str, list[StepDef]] = {}
    for step in steps:
        for event in step.emits:
            emitters.setdefault(event, []).append(step)
    depth: dict[str, int] = {}

    def depth_of(step: StepDef, seen: frozenset[str] = frozenset()) -> int:
        if step.name not in depth:
            sources = [
                e for ev in step.subscribes for e in emitters.get(ev, ()) if e.name not in seen
            ]
            below = seen | {step.name}
            depth[step.name] = 1 + max((depth_of(s, below) for s in sources), default=-1)
        return depth[step.name]

    def key(step: StepDef) -> tuple[Any, ...]:
        parts = re.split(r"(\d+)", step.name)
        return (depth_of(step), [int(p) if p.isdigit() else p for p in parts])

    return key


class Edge(BaseModel):
    source: str  # the emitting step
    event: str
    target: str  # the subscribing step


class StepInfo(BaseModel):
    name: str
    task: str
    entry: bool
    subscribes: list[str]
    emits: list[str]
    input_schema: dict[str, Any] | None = None
    on_event: list[str] = Field(default_factory=list, description="Signals that start a run.")
    webhook: str | None = Field(
        default=None, description="The webhook that starts a run (POST /api/_webhooks/{name})."
    )
    await_before: str | None = Field(
        default=None,
        description="Its declared await before the body: 'sleep 5 s', "
        "'event payment.confirmed (timeout 60 s)' or 'trigger'.",
    )
    await_after: str | None = Field(default=None, description="Its declared await after the body.")


class FlowInfo(BaseModel):
    """A flow as the CLI and the API describe it."""

    name: str
    on_event: list[str] = Field(
        default_factory=list, description="Signals that start a run (its entry steps' on_event)."
    )
    steps: list[StepInfo]
    edges: list[Edge]


@dataclass(frozen=True)
class FlowGraph:
    name: str
    steps: Mapping[str, StepDef]
    _by_event: Mapping[str, tuple[StepDef, ...]] = field(repr=False)

    @classmethod
    def build(cls, name: str, steps: Sequence[StepDef]) -> FlowGraph:
        by_name: dict[str, StepDef] = {}
        for step in steps:
            if step.name in by_name:
                raise FlowDefinitionError(
                    f"flow {name!r} has two steps named {step.name!r} (tasks "
                    f"{by_name[step.name].task_name!r} and {step.task_name!r}); pass "
                    "name=... to @step to tell them apart.",
                    flow=name,
                    step=step.name,
                )
            by_name[step.name] = step
        if not any(step.entry for step in steps):
            raise FlowDefinitionError(
                f"flow {name!r} has no entry step; mark the first step with entry=True.",
                flow=name,
            )
        ordered = {s.name: s for s in sorted(steps, key=_display_order(steps))}
        by_event: dict[str, list[StepDef]] = {}
        for step in ordered.values():
            for event in step.subscribes:
                by_event.setdefault(event, []).append(step)
        return cls(name, ordered, {k: tuple(v) for k, v in by_event.items()})

    @property
    def entry_steps(self) -> list[StepDef]:
        return [step for step in self.steps.values() if step.entry]

    @property
    def on_event(self) -> tuple[str, ...]:
        """The signals that start a run: every entry step's ``on_event``, once each (a run
        starts all its entry steps, whichever declared the signal)."""
        return tuple(dict.fromkeys(name for s in self.entry_steps for name in s.on_event))

    def step(self, name: str) -> StepDef:
        try:
            return self.steps[name]
        except KeyError:
            raise FlowDefinitionError(
                f"flow {self.name!r} has no step {name!r}; this worker knows "
                f"{sorted(self.steps)}. Deploy the same workers package everywhere.",
                flow=self.name,
                step=name,
            ) from None

    def candidates(self, event_name: str) -> list[Candidate]:
        """Steps that subscribe to ``event_name``, with everything each waits for."""
        return [Candidate(s.name, s.subscribes) for s in self._by_event.get(event_name, ())]

    def edges(self) -> list[Edge]:
        return [
            Edge(source=source.name, event=event, target=target.name)
            for source in self.steps.values()
            for event in source.emits
            for target in self._by_event.get(event, ())
        ]

    def info(self) -> FlowInfo:
        steps = [
            StepInfo(
                name=s.name,
                task=s.task_name,
                entry=s.entry,
                subscribes=list(s.subscribes),
                emits=list(s.emits),
                input_schema=s.input_model.model_json_schema() if s.input_model else None,
                on_event=list(s.on_event),
                webhook=s.webhook.name if s.webhook else None,
                await_before=s.await_before.describe() if s.await_before else None,
                await_after=s.await_after.describe() if s.await_after else None,
            )
            for s in self.steps.values()
        ]
        on_event = list(self.on_event)
        return FlowInfo(name=self.name, on_event=on_event, steps=steps, edges=self.edges())


class FlowRegistry:
    """Every flow of one Celery app."""

    def __init__(self, steps: Iterable[StepDef]) -> None:
        by_flow: dict[str, list[StepDef]] = {}
        for step in steps:
            for flow in step.flows:
                by_flow.setdefault(flow, []).append(step)
        self.flows = {name: FlowGraph.build(name, s) for name, s in sorted(by_flow.items())}
        self._on_event: dict[str, list[FlowGraph]] = {}
        for graph in self.flows.values():
            for event in graph.on_event:
                self._on_event.setdefault(event, []).append(graph)
        self._webhooks: dict[str, tuple[Webhook, FlowGraph, StepDef]] = {}
        for graph in self.flows.values():
            for entry in graph.entry_steps:
                if entry.webhook is not None:
                    self._add_webhook(entry.webhook, graph, entry)
        self.schedules = _schedules_of(self.flows.values())  # by name, across the app

    def _add_webhook(self, webhook: Webhook, graph: FlowGraph, step: StepDef) -> None:
        """One flow per webhook name, across the app: a second declaration is refused."""
        if webhook.name in self._webhooks:
            _, other_graph, other = self._webhooks[webhook.name]
            raise FlowDefinitionError(
                f"webhook {webhook.name!r} is declared twice: on step {other.name!r} of flow "
                f"{other_graph.name!r} (task {other.task_name!r}) and on step {step.name!r} of "
                f"flow {graph.name!r} (task {step.task_name!r}); a webhook name starts one "
                "flow, so rename one.",
                flow=graph.name,
                step=step.name,
            )
        self._webhooks[webhook.name] = (webhook, graph, step)

    @classmethod
    def from_tasks(cls, tasks: Iterable[Any]) -> FlowRegistry:
        return cls(StepDef.from_task(t) for t in tasks if isinstance(t, FlowTask))

    def flow(self, name: str) -> FlowGraph:
        try:
            return self.flows[name]
        except KeyError:
            known = ", ".join(self.flows) or "none (is FLOWQUEUE_WORKERS right?)"
            raise UnknownFlow(f"unknown flow {name!r}; known flows: {known}.", flow=name) from None

    def webhook(self, name: str) -> tuple[Webhook, FlowGraph] | None:
        """The webhook named ``name`` and the flow it starts (None: no such webhook)."""
        found = self._webhooks.get(name)
        return None if found is None else found[:2]

    @property
    def webhooks(self) -> dict[str, tuple[Webhook, FlowGraph]]:
        """Every webhook of the app by name, with the flow it starts."""
        return {name: (hook, graph) for name, (hook, graph, _) in self._webhooks.items()}

    def started_by(self, event: str) -> list[FlowGraph]:
        """The flows a signal named ``event`` starts a run of (by name)."""
        return list(self._on_event.get(event, ()))

    def declarations(self) -> list[Declaration]:
        """Every start trigger of the app as the trigger registry records it (schedules,
        then signal names, then webhooks)."""
        found = [
            Declaration(
                trigger="schedule",
                name=spec.name,
                flow=spec.flow,
                settings=spec.model_dump(mode="json", exclude={"name", "flow"}),
            )
            for spec in self.schedules.values()
        ]
        found += [
            Declaration(trigger="event", name=event, flow=graph.name)
            for graph in self.flows.values()
            for event in graph.on_event
        ]
        for name, (hook, graph) in self.webhooks.items():
            settings: dict[str, Any] = {"verifier": hook.verifier.kind}
            settings |= {"headers": list(hook.headers)}
            settings |= {"max_body_bytes": hook.max_body_bytes}
            settings |= {"idempotency_field": hook.idempotency_field}
            found.append(
                Declaration(trigger="webhook", name=name, flow=graph.name, settings=settings)
            )
        return found

    def declares_trigger(self, name: str) -> bool:
        """Whether ``name`` is a start trigger of the app: a schedule, an ``on_event``
        signal name or a webhook."""
        return name in self.schedules or name in self._on_event or name in self._webhooks


def _schedules_of(graphs: Iterable[FlowGraph]) -> dict[str, ScheduleSpec]:
    """Every schedule of the app by name (one flow each), its input checked against the
    flow's entry input models; a name declared twice is refused, naming both places."""
    found: dict[str, tuple[ScheduleSpec, str]] = {}
    for graph in graphs:
        for entry in graph.entry_steps:
            for schedule in entry.schedules:
                spec = schedule.spec(graph.name)
                where = f"step {entry.name!r} of flow {graph.name!r} (task {entry.task_name!r})"
                if spec.name in found:
                    raise FlowDefinitionError(
                        f"schedule {spec.name!r} is declared twice: on {found[spec.name][1]} "
                        f"and on {where}; schedule names are unique in the app, so pass "
                        "name='...' to one Schedule(...).",
                        flow=graph.name,
                        step=entry.name,
                    )
                try:
                    for other in graph.entry_steps:
                        other.parse_input(spec.input, graph.name)
                except InvalidInput as exc:
                    raise FlowDefinitionError(
                        f"schedule {spec.name!r} on {where}: its input does not fit: {exc}",
                        flow=graph.name,
                        step=entry.name,
                    ) from None
                found[spec.name] = (spec, where)
    return {name: spec for name, (spec, _) in sorted(found.items())}


def import_workers(spec: str, *, default: str) -> list[str]:
    """Import the modules named in ``spec`` (packages: all their modules); return names.

    They are looked for in the working directory first, as Celery looks for ``-A`` (the
    ``celery`` console script does not put it on ``sys.path``). The default package may be
    missing (a fresh project); a package named explicitly must import, or the worker would
    silently serve no flows.
    """
    imported: list[str] = []
    with cwd_in_path():
        for name in (part.strip() for part in spec.split(",") if part.strip()):
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if name == default and exc.name == name:
                    continue
                raise ConfigurationError(
                    f"cannot import flow module {name!r} (FLOWQUEUE_WORKERS): {exc}. Run the "
                    "worker from your project directory or fix the module path."
                ) from exc
            imported.append(name)
            for sub in pkgutil.walk_packages(getattr(module, "__path__", []), prefix=f"{name}."):
                importlib.import_module(sub.name)
                imported.append(sub.name)
    return imported
