"""What runs next: starting runs, emitting events, resuming and cancelling, enqueueing steps
(how a step ends is recorded by its middleware, ``_standard_middleware``).

Every decision goes through one atomic coordinator call, so with any number of workers a
step is enqueued once per run and a run gets exactly one terminal event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cached_property
from typing import Any

from flowqueue.authoring.flows import FlowGraph, FlowRegistry, StepDef
from flowqueue.errors import (
    BrokerUnavailable,
    FlowDefinitionError,
    InvalidInput,
    InvalidSignal,
    NonJsonPayload,
    PayloadTooLarge,
    RunAlreadyEnded,
    RunAlreadyExists,
    TriggerAlreadyUsed,
    UnknownRun,
    UnknownTrigger,
)
from flowqueue.model.awaits import check_signal_name
from flowqueue.model.events import Event, EventKind, NewEvent
from flowqueue.model.header import HEADER, StepHeader
from flowqueue.model.ids import new_run_id
from flowqueue.model.timers import TimerSpec, now_ms
from flowqueue.model.validation import check_identifier, to_jsonable
from flowqueue.runtime._connections import Connections
from flowqueue.runtime._monitor import monitor_name
from flowqueue.runtime._priorities import StepPriorities, step_priorities

log = logging.getLogger(__name__)


def step_task_id(run_id: str, step: str) -> str:
    """The Celery task id of a step instance: deterministic, so Flower shows run/step."""
    return f"{run_id}:{step}"


def run_event(kind: str, run_id: str, flow: str, **data: Any) -> NewEvent:
    """An event of the run itself (no step)."""
    return NewEvent(kind=kind, run_id=run_id, flow=flow, data=data)


def validate_run_input(graph: FlowGraph, value: Any) -> Any:
    """Check a run's input against every entry step's model before anything is written."""
    try:
        value = to_jsonable(value, "input")
    except NonJsonPayload as exc:
        raise InvalidInput(str(exc), flow=graph.name) from None
    for entry in graph.entry_steps:
        entry.parse_input(value, graph.name)
    return value


class Orchestrator:
    """Starts runs, routes emissions, signals and resumes, cancels runs, sends steps."""

    def __init__(
        self, app: Any, connections: Connections, flows: Callable[[], FlowRegistry]
    ) -> None:
        self.app = app
        self.settings = connections.settings
        self.connections = connections
        self._flows = flows

    @property
    def flows(self) -> FlowRegistry:
        return self._flows()

    @cached_property
    def priorities(self) -> StepPriorities:
        """Read on first use, once the app's configuration is final."""
        return step_priorities(self.app.conf.broker_url, self.settings)

    def start_run(self, flow: str, input: Any = None, *, run_id: str | None = None) -> str:
        graph = self.flows.flow(flow)
        value = validate_run_input(graph, input)
        run_id = run_id or new_run_id()
        started = run_event(EventKind.FLOW_STARTED, run_id, flow, input=value)
        entries = graph.entry_steps
        if self.connections.coordinator.start_run(started, [s.name for s in entries]) is None:
            raise RunAlreadyExists(
                f"run {run_id!r} exists already; start it with a new id.", run_id=run_id, flow=flow
            )
        try:
            for entry in entries:
                self.enqueue(run_id, flow, entry, value, new_run=True)
        except Exception as exc:  # the broker refused: end the run rather than strand it
            reason = f"its first step could not be sent to the Celery broker ({exc})"
            ended = run_event(EventKind.FLOW_CANCELLED, run_id, flow, reason=reason)
            self.connections.coordinator.cancel(run_id, flow, ended)
            raise BrokerUnavailable(
                f"run {run_id} was not started: {reason}. Check CELERY_BROKER_URL / "
                "FLOWQUEUE_REDIS_URL and that the broker is up, then start it again.",
                run_id=run_id,
                flow=flow,
            ) from exc
        return run_id

    def emit(self, header: StepHeader, attempt: int, name: str, payload: Any) -> Event:
        check_signal_name(name)
        graph = self.flows.flow(header.flow)
        step = graph.step(header.step)
        if step.emits and name not in step.emits:
            raise FlowDefinitionError(
                f"step {step.name!r} emitted {name!r} but declares emits={list(step.emits)}; "
                "add it there (the flow graph and the dashboard are drawn from emits).",
                run_id=header.run_id,
                flow=header.flow,
                step=header.step,
            )
        payload = to_jsonable(payload, f"payload of {name!r}")
        event = header.event(EventKind.EMIT, attempt, name=name, payload=payload)
        # A retried emitter re-sends steps it claimed before, in case it died first.
        emitted = self.connections.coordinator.emit(
            event, payload, graph.candidates(name), republish=attempt > 1
        )
        for claim in emitted.claims:
            self.enqueue(header.run_id, header.flow, graph.step(claim.step), claim.inputs)
        self._send_woken(emitted.woken)
        return emitted.event

    def signal(self, name: str, payload: Any) -> tuple[str, int]:
        """An event from outside any run: wakes the waits it matches. Returns its signal
        id and how many waits it woke."""
        check_signal_name(name)
        try:
            signal_id, woken = self.connections.coordinator.signal(name, payload)
        except (NonJsonPayload, PayloadTooLarge) as exc:
            raise InvalidSignal(str(exc)) from None
        self._send_woken(woken)
        return signal_id, len(woken)

    def resume(self, trigger_id: str, payload: Any) -> str:
        """Resume the await of ``trigger_id`` with ``payload``; returns its run id."""
        if not isinstance(trigger_id, str) or not trigger_id.strip():
            raise UnknownTrigger(
                "give the trigger id from the step.await.trigger event.", trigger_id=str(trigger_id)
            )
        try:
            payload = to_jsonable(payload, "payload")
        except NonJsonPayload as exc:
            raise InvalidInput(str(exc), trigger_id=trigger_id) from None
        coordinator = self.connections.coordinator
        info = coordinator.read_trigger(trigger_id)
        if info is None:
            raise UnknownTrigger(
                f"trigger {trigger_id!r} is unknown or expired; check the id in the run's "
                "step.await.trigger event.",
                trigger_id=trigger_id,
            )
        where = {"run_id": info.run_id, "flow": info.flow, "step": info.step}
        data = {"key": info.key, "result": payload, "trigger_id": trigger_id}
        resumed = NewEvent(kind=EventKind.STEP_RESUMED, **where, data=data)
        timer = TimerSpec(kind="resume", **where, key=info.key).member()
        result = coordinator.resume(trigger_id, info, payload, resumed, timer)
        about = {"trigger_id": trigger_id, **where}
        if result.outcome == "unknown":
            raise UnknownTrigger(f"trigger {trigger_id!r} is unknown or expired.", **about)
        if result.outcome == "ended":
            raise TriggerAlreadyUsed(
                f"trigger {trigger_id!r} cannot resume anything: run {info.run_id} has ended.",
                **about,
            )
        if result.outcome == "used":
            what = {"resumed": "already resumed", "timeout": "timed out"}.get(
                result.state, result.state
            )
            raise TriggerAlreadyUsed(
                f"trigger {trigger_id!r} was {what}; a trigger resumes its await once.", **about
            )
        try:
            step = self.flows.flow(info.flow).step(info.step)
            self.enqueue(info.run_id, info.flow, step, result.arg, timer=timer)
        except Exception:  # resumed for good: the timer waits in the handed set; a pump sends it
            log.exception("could not send resumed step %s/%s", info.run_id, info.step)
        return info.run_id

    def cancel(self, run_id: str, reason: str = "") -> list[str]:
        """Cancel a run: flow.cancelled, then no step of it starts again. Returns the
        steps that were queued (their Celery messages are revoked)."""
        check_identifier("run id", run_id)
        first = self.connections.store.read(run_id, limit=1)
        if not first:
            raise UnknownRun(
                f"run {run_id!r} has no events; check the id (flowqueue show RUN).", run_id=run_id
            )
        flow = first[0].flow
        event = run_event(EventKind.FLOW_CANCELLED, run_id, flow, reason=reason)
        outcome = self.connections.coordinator.cancel(run_id, flow, event)
        if outcome.outcome == "ended":
            raise RunAlreadyEnded(
                f"run {run_id} has ended already ({outcome.status}); there is nothing to cancel.",
                run_id=run_id,
                flow=flow,
            )
        if outcome.queued and not self.app.conf.task_always_eager:
            self.app.control.revoke([step_task_id(run_id, step) for step in outcome.queued])
        return outcome.queued

    def fire(self, member: str, at_ms: int | None = None) -> None:
        """Send the step of a timer (its delivery claims the timer), at its due time."""
        spec = TimerSpec.model_validate_json(member)
        step = self.flows.flow(spec.flow).step(spec.step)
        arg = self.connections.coordinator.step_arg(spec.run_id, spec.step)
        countdown = 0.0 if at_ms is None else max(0.0, (at_ms - now_ms()) / 1000)
        retries = spec.attempt - 1 if spec.kind == "retry" else 0  # Celery's count, for Flower
        self.enqueue(
            spec.run_id, spec.flow, step, arg, countdown or None, timer=member, retries=retries
        )

    def _send_woken(self, woken: list[str]) -> None:
        for member in woken:
            try:
                self.fire(member)
            except Exception:  # it waits in the handed set; the pump sends it again
                log.exception("could not send woken step %s", member)

    def enqueue(
        self,
        run_id: str,
        flow: str,
        step: StepDef,
        arg: Any,
        countdown: float | None = None,
        timer: str = "",
        *,
        new_run: bool = False,
        retries: int = 0,
    ) -> None:
        """Send one delivery of ``step``; a new run's entry steps queue behind the
        deliveries that runs in progress are owed (``flowqueue.runtime._priorities``).
        Monitors see it as ``<flow>/<step>``, retried ``retries`` times (``_monitor``)."""
        task = self.app.tasks[step.task_name]
        header = StepHeader(run_id=run_id, flow=flow, step=step.name, timer=timer)
        priorities = self.priorities
        task.apply_async(
            args=[arg],
            task_id=step_task_id(run_id, step.name),
            headers={HEADER: header.model_dump()},
            countdown=countdown,
            priority=priorities.new_run if new_run else priorities.in_flight,
            shadow=monitor_name(flow, step.name),
            retries=retries,
        )
