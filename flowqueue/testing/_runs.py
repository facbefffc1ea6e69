"""``run_flow``: start a run and wait, by reading its log, until it ends (or until a
condition holds); when it does not in time, say why with the run's own words."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flowqueue.errors import RunTimeout
from flowqueue.model.events import Event
from flowqueue.model.lines import timeline
from flowqueue.model.reducer import AwaitInfo, RunState, StepStatus, reduce
from flowqueue.runtime.client import no_run, start_flow
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.testing._worker import Worker

Until = Callable[[RunState], bool]
TIMEOUT = 30.0  # seconds; generous, since a busy CI machine is slow
POLL = 0.05  # seconds between reads of the log
SHOWN_EVENTS = 15  # the last events an error quotes


def ended(state: RunState) -> bool:
    """The run is completed, failed or cancelled (what ``run_flow`` waits for)."""
    return state.terminal


def awaiting(step: str) -> Until:
    """For ``run_flow.wait(run_id, until=awaiting("step"))``: the step is parked on an
    await (a sleep, an event or a trigger)."""

    def check(state: RunState) -> bool:
        found = state.steps.get(step)
        return found is not None and found.status == StepStatus.AWAITING

    check.__name__ = f"awaiting({step!r})"
    return check


class RunFlow:
    """What the ``run_flow`` fixture gives. ``run_flow(flow, input)`` starts a run and
    returns its ``RunState`` once it has ended; ``start`` and ``wait`` do the two halves,
    for runs that wait for the outside world (a signal, a trigger) in between."""

    def __init__(self, app: Any, worker: Worker | None = None) -> None:
        self.app = app
        self.worker = worker

    def __call__(self, flow: str, input: Any = None, *, timeout: float = TIMEOUT) -> RunState:
        return self.wait(self.start(flow, input), timeout=timeout)

    def start(self, flow: str, input: Any = None) -> str:
        """Start a run (``flowqueue.start_flow`` on the test app); returns its id."""
        return start_flow(flow, input, app=self.app)

    def events(self, run_id: str) -> list[Event]:
        """The run's whole log."""
        return flowqueue_of(self.app).store.read(run_id)

    def wait(self, run_id: str, *, until: Until = ended, timeout: float = TIMEOUT) -> RunState:
        """The run's state once ``until`` holds (by default: once it has ended).

        Raises ``RunTimeout`` when it does not hold within ``timeout`` seconds, at once when
        the run ends without it or the worker has exited, and ``UnknownRun`` for an id
        with no events.
        """
        store = flowqueue_of(self.app).store
        deadline = time.monotonic() + timeout
        log = store.read(run_id)
        if not log:
            raise no_run(run_id)
        state = reduce(log)
        while not until(state):
            if state.terminal:  # it never will
                raise self._error(f"ended ({state.status}) before {_name(until)}", state, log)
            if self.worker is not None and not self.worker.running:
                raise self._error(f"is {state.status}, but the test worker exited", state, log)
            if time.monotonic() > deadline:
                what = "end" if until is ended else f"reach {_name(until)}"
                message = f"did not {what} within {timeout:g} s; it is {state.status}"
                raise self._error(message, state, log)
            time.sleep(POLL)
            more = store.read(run_id, after=log[-1].id)
            if more:
                log += more
                state = reduce(log)
        return state

    def _error(self, what: str, state: RunState, log: list[Event]) -> RunTimeout:
        lines = [f"run {state.run_id} of flow {state.flow!r} {what}."]
        waits = {info.step: _needs(info) for info in state.awaits.values()}
        for name, step in state.steps.items():
            lines.append(f"  step {name}: {step.status}{waits.get(name, '')}")
        shown = [line for _, line in timeline(log)][-SHOWN_EVENTS:]
        lines.append(f"its last {len(shown)} of {len(log)} events:")
        lines += ["  " + line for line in shown]
        if self.worker is not None:  # its log matters unless the run simply ended
            lines.append(self.worker.describe(log_tail=not state.terminal))
        return RunTimeout("\n".join(lines), run_id=state.run_id, flow=state.flow)


def _name(until: Until) -> str:
    return getattr(until, "__name__", repr(until))


def _needs(info: AwaitInfo) -> str:
    """What an awaiting step needs before its run can go on."""
    if info.kind == "time":
        return f", until {info.until}"
    if info.kind == "trigger":
        need = f"a resume of trigger {info.trigger_id} (flowqueue.resume)"
    else:
        need = f"signal {info.name!r} matching {info.match} (flowqueue.signal)"
    return f", for {need}: send it between run_flow.start and run_flow.wait"
