"""What runs next: starting runs (by hand or by a signal), emitting events, resuming and
cancelling, enqueueing steps (how a step ends is recorded by its middleware,
``_standard_middleware``).

Every decision goes through one atomic coordinator call, so with any number of workers a
step is enqueued once per run and a run gets exactly one terminal event.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

from flowqueue.authoring.flows import FlowGraph, FlowRegistry, StepDef
from flowqueue.backend.coordinator import Emitted, StepStart
from flowqueue.backend.redis.starts import RedisStarts, StartAnswer, StartScope
from flowqueue.backend.redis.triggers import TriggerKind, TriggerRegistry
from flowqueue.errors import (
    BrokerUnavailable,
    FlowDefinitionError,
    InvalidInput,
    InvalidSignal,
    NonJsonPayload,
    RunAlreadyEnded,
    RunAlreadyExists,
    RunNotFailed,
    TriggerAlreadyUsed,
    UnknownRun,
    UnknownTrigger,
)
from flowqueue.model.awaits import check_signal_name
from flowqueue.model.events import Event, EventKind, NewEvent, encode_body
from flowqueue.model.header import HEADER, StartNote, StepHeader
from flowqueue.model.ids import U64_MAX, new_run_id
from flowqueue.model.statuses import STEPS_SLOT
from flowqueue.model.timers import TimerSpec, now_ms
from flowqueue.model.validation import check_identifier, to_jsonable
from flowqueue.runtime._connections import Connections
from flowqueue.runtime._deferred import DeferredClaim
from flowqueue.runtime._monitor import monitor_name
from flowqueue.runtime._priorities import StepPriorities, step_priorities
from flowqueue.runtime._sender import Sender, StepMessage

log = logging.getLogger(__name__)
# The longest signal id (``<ms>-<seq>``), to check a flow.started fits before it is known.
_LONGEST_SIGNAL_ID = f"{U64_MAX}-{U64_MAX}"


def _unknown(run_id: str) -> UnknownRun:
    return UnknownRun(
        f"run {run_id!r} has no events; check the id (flowqueue show RUN).", run_id=run_id
    )


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


class Signalled(int):
    """What a signal did: the number of waits it woke (an int, as ``flowqueue.signal``
    always returned), with its ``signal_id``, the ``runs`` it started (flow -> run id) and
    whether it ``replayed`` the answer of an earlier signal with the same idempotency key."""

    signal_id: str
    runs: dict[str, str]
    replayed: bool

    def __new__(
        cls, woken: int, signal_id: str, runs: Mapping[str, str], replayed: bool
    ) -> Signalled:
        made = super().__new__(cls, woken)
        made.signal_id, made.runs, made.replayed = signal_id, dict(runs), replayed
        return made

    @property
    def woken(self) -> int:
        return int(self)


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
    def sender(self) -> Sender:
        """Read on first use, once the app's configuration is final."""
        return Sender(self.app, self.settings.redis_url, lambda: self.connections.coordinator)

    @cached_property
    def priorities(self) -> StepPriorities:
        """Read on first use, once the app's configuration is final."""
        conf = self.app.conf
        return step_priorities(conf.broker_url, self.settings, conf.task_queue_max_priority)

    @property
    def starts(self) -> RedisStarts:
        coordinator = self.connections.coordinator  # this process's connection
        return RedisStarts(coordinator.client, self.settings)

    def start_run(
        self,
        flow: str,
        input: Any = None,
        *,
        run_id: str | None = None,
        trigger: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        countdown: float | None = None,
        idempotency_scope: StartScope = "start",
    ) -> str:
        """Start a run of ``flow``; ``trigger`` (default ``{"kind": "manual"}``) says in
        its flow.started what started it. With ``idempotency_key``, a start with the same
        key within FLOWQUEUE_IDEMPOTENCY_SECONDS returns the first one's run id instead.
        ``countdown``: its entry steps run that many seconds from now (a schedule's run,
        started just before its tick). ``idempotency_scope`` keeps a webhook's delivery
        ids apart from the keys of manual starts."""
        graph = self.flows.flow(flow)
        value = validate_run_input(graph, input)
        started_by = dict(trigger or {"kind": "manual"})
        if idempotency_key is None and run_id is None:
            return self._start_new(graph, value, new_run_id(), started_by, countdown)
        if idempotency_key is None:
            return self._start(graph, value, run_id or new_run_id(), started_by, countdown)
        check_identifier("idempotency key", idempotency_key)
        started_by["idempotency_key"] = idempotency_key
        if run_id is not None and self.connections.store.read(run_id, limit=1):
            raise RunAlreadyExists(
                f"run {run_id!r} exists already; start it with a new id.", run_id=run_id, flow=flow
            )
        planned = run_id or new_run_id()
        self._started(graph, value, planned, started_by)  # too large: raises, writes nothing
        answer = self.starts.claim_start(flow, planned, idempotency_key, idempotency_scope)
        self._start_all(answer, {flow: value}, started_by)
        if answer.state != "done":
            self.starts.done(idempotency_scope, flow, idempotency_key)
        return answer.runs[flow]

    def start_owed(
        self,
        flow: str,
        input: Any,
        run_id: str,
        trigger: Mapping[str, Any],
        countdown: float | None = None,
    ) -> None:
        """Start run ``run_id`` that a firing owes; if it exists, send again the entry
        steps no delivery has claimed yet (an earlier start died before sending them).
        Safe to repeat: a step's duplicate delivery is skipped by its claim."""
        graph = self.flows.flow(flow)
        value = validate_run_input(graph, input)
        try:
            self._start(graph, value, run_id, trigger, countdown)
        except RunAlreadyExists:
            statuses = self.connections.coordinator.step_statuses(run_id)
            for entry in graph.entry_steps:
                if statuses.get(entry.name) == "queued":
                    self.send(self.message(run_id, flow, entry, value, countdown, new_run=True))

    def check_start(self, flow: str, input: Any, trigger: Mapping[str, Any]) -> None:
        """Raise what ``start_run`` would for ``input`` (``UnknownFlow``, ``InvalidInput``,
        ``PayloadTooLarge``) without touching Redis: for a caller that claims something
        (a webhook delivery) before it starts the run."""
        graph = self.flows.flow(flow)
        trigger = {**trigger, "idempotency_key": "x" * 128}  # the longest, as start_run adds it
        self._started(graph, validate_run_input(graph, input), new_run_id(), trigger)

    def _started(self, graph: FlowGraph, value: Any, run_id: str, trigger: Any) -> NewEvent:
        """The run's flow.started; raises before anything is written if it is too large."""
        # A re-run names its first run in flow.started's data too, the link both logs hold.
        rerun = {"rerun_of": trigger["run_id"]} if trigger.get("kind") == "rerun" else {}
        started = run_event(
            EventKind.FLOW_STARTED, run_id, graph.name, input=value, trigger=trigger, **rerun
        )
        encode_body(started, self.settings.max_payload_bytes)
        return started

    def _start_all(
        self, answer: StartAnswer, values: Mapping[str, Any], trigger: Mapping[str, Any]
    ) -> None:
        """Start the runs ``answer`` names, unless they have started: a call that replays
        an earlier one's answer helps start them, in case that one died first."""
        if answer.state == "done":
            return
        for flow, run_id in answer.runs.items():
            if flow not in values:  # an earlier call's flow this process does not serve
                continue
            # Another call with the key may get there first (it helps, or this one does).
            with contextlib.suppress(RunAlreadyExists):
                self._start(self.flows.flow(flow), values[flow], run_id, trigger)

    def _start(
        self,
        graph: FlowGraph,
        value: Any,
        run_id: str,
        trigger: Any,
        countdown: float | None = None,
    ) -> str:
        flow = graph.name
        started = self._started(graph, value, run_id, trigger)
        entries = graph.entry_steps
        sends = []
        if self.sender.direct:  # queued by the call that records the start
            messages = [
                self.message(run_id, flow, e, value, countdown, new_run=True, queued_once=True)
                for e in entries
            ]
            sends = self.sender.sends(messages)
        coordinator = self.connections.coordinator
        if coordinator.start_run(started, [s.name for s in entries], sends) is None:
            raise RunAlreadyExists(
                f"run {run_id!r} exists already; start it with a new id.", run_id=run_id, flow=flow
            )
        if sends:
            return run_id
        try:
            for entry in entries:
                self.send(self.message(run_id, flow, entry, value, countdown, new_run=True))
        except Exception as exc:  # the broker refused: end the run rather than strand it
            raise self._not_sent(run_id, flow, exc) from exc
        return run_id

    def _start_new(
        self, graph: FlowGraph, value: Any, run_id: str, trigger: Any, countdown: float | None
    ) -> str:
        """``_start`` for a new run id (none can exist): the entry steps are sent first,
        each carrying the start (``StartNote``), then it is recorded. A run whose entry
        step was sent always starts: if this process dies before recording it, the step's
        claim does; a refused send records nothing that could be left running. With
        direct sends there is one call, and no note: ``_start``."""
        if self.sender.direct:
            return self._start(graph, value, run_id, trigger, countdown)
        started = self._started(graph, value, run_id, trigger)
        entries = [s.name for s in graph.entry_steps]
        body = encode_body(started, self.settings.max_payload_bytes).decode()
        note = StartNote(body=body, entries=entries, made_ms=now_ms())
        try:
            for entry in graph.entry_steps:
                self.send(
                    self.message(
                        run_id, graph.name, entry, value, countdown, new_run=True, start=note
                    )
                )
        except Exception as exc:  # an entry step sent before may run: start it, then end it
            self.connections.coordinator.start_run(started, entries)
            raise self._not_sent(run_id, graph.name, exc) from exc
        # Recorded already if an entry step's claim came first (an eager or quick worker).
        self.connections.coordinator.start_run(started, entries)
        return run_id

    def _not_sent(self, run_id: str, flow: str, exc: Exception) -> BrokerUnavailable:
        """Cancel a run whose entry steps the broker refused; the error to raise."""
        reason = f"its first step could not be sent to the Celery broker ({exc})"
        ended = run_event(EventKind.FLOW_CANCELLED, run_id, flow, reason=reason)
        self.connections.coordinator.cancel(run_id, flow, ended)
        return BrokerUnavailable(
            f"run {run_id} was not started: {reason}. Check CELERY_BROKER_URL / "
            "FLOWQUEUE_REDIS_URL and that the broker is up, then start it again.",
            run_id=run_id,
            flow=flow,
        )

    def emit(
        self,
        header: StepHeader,
        attempt: int,
        name: str,
        payload: Any,
        deferred: DeferredClaim | None = None,
    ) -> Event:
        """A step's emit; ``deferred``: the emitter's claim, if still to make, goes with it
        (``ClaimLost`` if it does not run: nothing is written)."""
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
        candidates = graph.candidates(name)
        # A step waiting for this name alone gets this payload: its message is known now,
        # and is sent by the call that claims it (direct sends). A later emit of the name
        # builds one too, unused (the step is claimed): a read to know first would cost
        # the round trip this saves.
        sends = {}
        if self.sender.direct:
            for candidate in candidates:
                if list(candidate.subscribes) == [name]:
                    to = graph.step(candidate.step)
                    message = self.message(
                        header.run_id, header.flow, to, {name: payload}, queued_once=True
                    )
                    sends[candidate.step] = self.sender.writes(message)
        coordinator = self.connections.coordinator

        def alone(attempt: int) -> Emitted:
            # A retried emitter re-sends steps it claimed before, in case it died first.
            event = header.event(EventKind.EMIT, attempt, name=name, payload=payload)
            return coordinator.emit(event, payload, candidates, republish=attempt > 1, sends=sends)

        if deferred is None:
            emitted = alone(attempt)
        else:
            started, lease_ms = deferred.started, self.connections.lease_ms

            def together() -> tuple[StepStart, Emitted | None]:
                event = header.event(EventKind.EMIT, 1, name=name, payload=payload)
                answer = coordinator.claim_emit(
                    started, lease_ms, event, payload, candidates, sends
                )
                if isinstance(answer, Emitted):
                    return StepStart("run", attempt=1), answer
                return answer, None

            emitted = deferred.settle(together, alone)
        for claim in emitted.claims:
            if not claim.sent:
                self.send(
                    self.message(header.run_id, header.flow, graph.step(claim.step), claim.inputs)
                )
        self._send_woken(emitted.woken)
        return emitted.event

    def signal(self, name: str, payload: Any, *, idempotency_key: str | None = None) -> Signalled:
        """An event from outside any run: wakes the waits it matches and starts a run of
        each flow whose entry step declares ``on_event=name``, the payload as its input.
        The payload is checked against those flows' entry input models before anything
        is written. With ``idempotency_key``, a signal with the same name and key within
        FLOWQUEUE_IDEMPOTENCY_SECONDS returns the first one's answer and writes nothing."""
        check_signal_name(name)
        if idempotency_key is not None:
            check_identifier("idempotency key", idempotency_key, InvalidSignal)
        try:
            payload = to_jsonable(payload, "payload")
        except NonJsonPayload as exc:
            raise InvalidSignal(str(exc)) from None
        flows = self.flows.started_by(name)
        trigger: dict[str, Any] = {"kind": "event", "name": name, "signal_id": _LONGEST_SIGNAL_ID}
        if idempotency_key is not None:
            trigger["idempotency_key"] = idempotency_key
        runs = {graph.name: new_run_id() for graph in flows}
        try:
            values = {graph.name: validate_run_input(graph, payload) for graph in flows}
            for graph in flows:
                self._started(graph, values[graph.name], runs[graph.name], trigger)
            answer = self.starts.signal(name, payload, runs, idempotency_key)
        except NonJsonPayload as exc:
            raise InvalidSignal(str(exc)) from None
        # PayloadTooLarge stays itself: too large is 413 on every way in (a start, a rerun).
        self._send_woken(list(answer.wake))
        trigger["signal_id"] = answer.signal_id
        self._start_all(answer, values, trigger)
        if answer.state == "new":  # a replayed key started nothing: no firing
            self._record_firings("event", name, answer.runs)
        if idempotency_key is not None and answer.state != "done" and answer.runs:
            self.starts.done("signal", name, idempotency_key)
        return Signalled(answer.woken, answer.signal_id, answer.runs, answer.state != "new")

    def _record_firings(self, kind: TriggerKind, name: str, runs: Mapping[str, str]) -> None:
        """A trigger.fired per run in the trigger registry, after the runs started."""
        registry = TriggerRegistry(self.connections.coordinator.client, self.connections.keys)
        for flow, run_id in runs.items():
            try:
                registry.fired(kind, name, flow, run_id)
            except Exception:  # the run started: a lost record must not fail the signal
                log.exception("could not record %s trigger %s firing run %s", kind, name, run_id)

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
            self.send(self.message(info.run_id, info.flow, step, result.arg, timer=timer))
        except Exception:  # resumed for good: the timer waits in the handed set; a pump sends it
            log.exception("could not send resumed step %s/%s", info.run_id, info.step)
        return info.run_id

    def cancel(self, run_id: str, reason: str = "") -> list[str]:
        """Cancel a run: flow.cancelled, then no step of it starts again. Returns the
        steps that were queued (their Celery messages are revoked)."""
        flow = self._first(run_id).flow
        event = run_event(EventKind.FLOW_CANCELLED, run_id, flow, reason=reason)
        outcome = self.connections.coordinator.cancel(run_id, flow, event)
        if outcome.outcome == "ended":
            raise RunAlreadyEnded(
                f"run {run_id} has ended already ({outcome.status or 'archived'}); there is "
                "nothing to cancel.",
                run_id=run_id,
                flow=flow,
            )
        if outcome.queued and not self.app.conf.task_always_eager:
            self.app.control.revoke([step_task_id(run_id, step) for step in outcome.queued])
        return outcome.queued

    def rerun(self, run_id: str) -> str:
        """Start a new run of ``run_id``'s flow with its input; flow.rerun in the old log
        and ``rerun_of`` in the new flow.started link them. Returns the new run id."""
        first = self._first(run_id)
        graph = self.flows.flow(first.flow)
        value = validate_run_input(graph, first.data.get("input"))  # the model may have moved
        new_id, trigger = new_run_id(), {"kind": "rerun", "run_id": run_id}
        self._started(graph, value, new_id, trigger)  # too large: raises, writes nothing
        note = NewEvent(
            kind=EventKind.FLOW_RERUN, run_id=run_id, flow=graph.name, data={"rerun": new_id}
        )
        if self.connections.coordinator.rerun_note(note) is None:
            # Read from the archive (gone from Redis): its archived log stays as it was;
            # the new run's flow.started still names it (rerun_of).
            log.info("run %s is archived: the note of its rerun %s is not added", run_id, new_id)
        return self._start(graph, value, new_id, trigger)

    def retry(self, run_id: str) -> list[str]:
        """Run a failed run again under its id: its failed steps (and the steps its failure
        cancelled) get one more attempt each, with the inputs its log recorded (the run's
        input for an entry step, the first payload of each subscribed name for the others).
        Returns those steps."""
        flow = self._first(run_id).flow
        events = self.connections.store.read(run_id)
        graph = self.flows.flow(flow)
        first_emits: dict[str, Any] = {}
        for event in events:
            if event.kind == EventKind.EMIT:
                first_emits.setdefault(str(event.data.get("name")), event.data.get("payload"))
        retried = run_event(EventKind.FLOW_RETRIED, run_id, flow, steps=STEPS_SLOT)
        done = self.connections.coordinator.retry_run(retried, first_emits)
        if done.outcome == "gone":  # read from the archive: its retention in Redis passed
            raise RunNotFailed(
                f"run {run_id} cannot be retried: its retention passed and only the archive "
                f"keeps it; `flowqueue rerun {run_id}` starts a new run with its input.",
                run_id=run_id,
                flow=flow,
            )
        if done.outcome == "busy":
            why = f"a step of it still holds its lease for {done.busy_ms} ms; try again then"
        else:
            why = f"it is {done.status}, and only a failed run can be (rerun starts a new one)"
        if done.outcome != "ok":
            raise RunNotFailed(f"run {run_id} cannot be retried: {why}.", run_id=run_id, flow=flow)
        try:
            for step_name in done.steps:
                step = graph.step(step_name)
                inputs = {name: first_emits.get(name) for name in step.subscribes}
                self.send(
                    self.message(
                        run_id, flow, step, events[0].data.get("input") if step.entry else inputs
                    )
                )
        except Exception as exc:  # the broker refused: end the run rather than strand it
            reason = f"a retried step could not be sent to the Celery broker ({exc})"
            ended = run_event(EventKind.FLOW_CANCELLED, run_id, flow, reason=reason)
            self.connections.coordinator.cancel(run_id, flow, ended)
            raise BrokerUnavailable(
                f"run {run_id} was cancelled: {reason}.", run_id=run_id
            ) from exc
        return done.steps

    def _first(self, run_id: str) -> Event:
        check_identifier("run id", run_id)
        first = self.connections.store.read(run_id, limit=1)
        if not first:
            raise _unknown(run_id)
        return first[0]

    def fire(self, member: str, at_ms: int | None = None) -> None:
        """Send the step of a timer (its delivery claims the timer), at its due time."""
        spec = TimerSpec.model_validate_json(member)
        step = self.flows.flow(spec.flow).step(spec.step)
        arg = self.connections.coordinator.step_arg(spec.run_id, spec.step)
        countdown = 0.0 if at_ms is None else max(0.0, (at_ms - now_ms()) / 1000)
        retries = spec.attempt - 1 if spec.kind == "retry" else 0  # Celery's count, for Flower
        self.send(
            self.message(
                spec.run_id, spec.flow, step, arg, countdown or None, timer=member, retries=retries
            )
        )

    def _send_woken(self, woken: list[str]) -> None:
        for member in woken:
            try:
                self.fire(member)
            except Exception:  # it waits in the handed set; the pump sends it again
                log.exception("could not send woken step %s", member)

    def send(self, message: StepMessage) -> None:
        """Send one step message now."""
        self.sender.send(message)

    def _traceparent(self, run_id: str) -> str:
        """The sending span, for the delivery's span to be its child (tracing only)."""
        if not self.settings.tracing:
            return ""
        from flowqueue.runtime._tracing import traceparent_for  # the otel extra

        return traceparent_for(run_id)

    def message(
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
        start: StartNote | None = None,
        queued_once: bool = False,
    ) -> StepMessage:
        """A Celery message of ``step`` to send: its task and ``apply_async`` options. A
        new run's entry steps queue behind the deliveries that runs in progress are owed
        (``flowqueue.runtime._priorities``). Monitors see it as ``<flow>/<step>``,
        retried ``retries`` times (``_monitor``). ``start``: the run's start, for an
        entry step's claim to record if it is first. ``queued_once``: a script queues it,
        in the call that decides to send it (direct sends)."""
        task = self.app.tasks[step.task_name]
        header = StepHeader(
            run_id=run_id, flow=flow, step=step.name, timer=timer, start=start,
            queued_once=queued_once, traceparent=self._traceparent(run_id),
        )  # fmt: skip
        priorities = self.priorities
        return StepMessage(
            task,
            {
                "args": [arg],
                "task_id": step_task_id(run_id, step.name),
                "headers": {HEADER: header.model_dump(exclude_defaults=True)},
                "countdown": countdown,
                "priority": priorities.new_run if new_run else priorities.in_flight,
                "shadow": monitor_name(flow, step.name),
                "retries": retries,
                "kwargsrepr": "{}",  # steps take no keyword arguments: no saferepr to run
            },
        )
