"""The example runs ``flowqueue dev`` starts so the dashboard has something to show: the
runs of ``make demo`` (``demo.RUNS``), answered as the demo answers them."""

from __future__ import annotations

import threading

from flowqueue.devtools.demo import RUNS, Nudge
from flowqueue.model.events import TERMINAL_KINDS
from flowqueue.runtime.app import create_app
from flowqueue.runtime.client import start_flow
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.settings import Settings


class Examples:
    """A client app on ``redis_url``; ``missing`` lists the example flows its workers
    package lacks (a project of one's own has other flows under ``workers/``)."""

    def __init__(self, redis_url: str) -> None:
        self.app = create_app(Settings(redis_url=redis_url))
        self._closing = threading.Event()

    def missing(self) -> list[str]:
        known = flowqueue_of(self.app).flows.flows
        return sorted({flow for flow, *_ in RUNS if flow not in known})

    def start(self) -> str:
        """Start every example run; one line saying which."""
        nudged: list[tuple[str, Nudge]] = []
        for flow, payload, _expected, nudge in RUNS:
            run_id = start_flow(flow, payload, app=self.app)
            if nudge is not None:
                nudged.append((run_id, nudge))
        # One thread answers the waits in turn: a wait answered late is answered all the same.
        threading.Thread(
            target=self._answer, args=(nudged,), name="flowqueue-dev-examples", daemon=True
        ).start()
        failing = [flow for flow, _, expected, _ in RUNS if expected == "failed"]
        names = ", ".join(flow for flow, *_ in RUNS)
        return (
            f"examples: started {len(RUNS)} runs ({names}); {', '.join(failing)} fails on purpose"
        )

    def close(self) -> None:
        self._closing.set()
        flowqueue_of(self.app).store.close()  # ends a wait for events still in progress

    def _answer(self, nudged: list[tuple[str, Nudge]]) -> None:
        store = flowqueue_of(self.app).store
        try:
            for run_id, nudge in nudged:
                for event in store.subscribe(run_id):
                    nudge(event, self.app)
                    if event.kind in TERMINAL_KINDS:
                        break
        except Exception:
            if not self._closing.is_set():
                raise  # a real failure: the thread's traceback says what
