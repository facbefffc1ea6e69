"""The run ledger: the atomic step transitions that orchestration is built on.

Each operation appends its events and updates the run's step table in one atomic step,
so concurrent workers agree on who enqueues a step (exactly once), which delivery of a
step runs it, and which finish ends the run (exactly one terminal event).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from flowqueue.events import Event, NewEvent

Outcome = Literal["completed", "failed"]
STEP_STATUSES = ("queued", "running", "completed", "failed")


@dataclass(frozen=True)
class StepStart:
    """What ``begin_step`` decided for one delivery of a step.

    ``run``: this delivery runs it (``attempt`` counts from 1). ``done``: it finished
    already (a duplicate delivery). ``ended``: the run is over. ``busy``: another delivery
    holds a live lease for ``busy_ms`` more.
    """

    decision: Literal["run", "done", "ended", "busy"]
    attempt: int = 0
    busy_ms: int = 0


@dataclass(frozen=True)
class Claim:
    """A step this caller won the right to enqueue, with its inputs by event name."""

    step: str
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """A step that subscribes to an emitted name, and all the names it waits for."""

    step: str
    subscribes: Sequence[str]


@dataclass(frozen=True)
class StepFinish:
    duplicate: bool
    terminal: bool = False


class RunLedger(Protocol):
    def start_run(self, started: NewEvent, entry_steps: Sequence[str]) -> Event | None:
        """Append flow.started and queue the entry steps; None if the run id exists."""
        ...

    def begin_step(self, started: NewEvent, lease_ms: int) -> StepStart:
        """Claim a delivery of ``started.step``; appends step.started when it runs.

        ``started.data["attempt"]`` / ``meta["attempt"]`` hold ``"$attempt"``; the ledger
        writes the real attempt number there.
        """
        ...

    def renew_lease(self, run_id: str, step: str, lease_ms: int) -> bool: ...

    def emit(
        self,
        event: NewEvent,
        payload: Any,
        candidates: Sequence[Candidate],
        *,
        republish: bool = False,
    ) -> tuple[Event, list[Claim]]:
        """Append an emit event and claim every candidate it makes ready, once."""
        ...

    def finish_step(self, event: NewEvent, outcome: Outcome, terminal: NewEvent) -> StepFinish:
        """Record a step's end once; append ``terminal`` if this ends the run.

        A flow.completed ``terminal`` holds ``"$duration_ms"`` for the ledger to fill in.
        """
        ...

    def step_statuses(self, run_id: str) -> dict[str, str]: ...
