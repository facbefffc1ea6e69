"""Hooks around every delivery of a step, in a fixed order (dramatiq's middleware model).

A worker's concerns (the claim, the lease, log capture, suspension at an await, retries,
recording the end) are each a small ``Middleware``; the runner calls them through these
four hooks only, so new behaviour plugs in with ``app.flowqueue.add_middleware(...)``
instead of an edit to the runner. ``before_step`` runs in list order and may end the
delivery with ``SkipDelivery``; ``around_step`` contexts nest in list order (the first is
outermost) around the step's body; ``after_failure`` runs in list order inside them;
``after_step`` runs in reverse order, once the body has returned and the contexts closed.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from flowqueue.authoring.flows import StepDef
from flowqueue.authoring.step import FlowTask
from flowqueue.model.header import StepHeader
from flowqueue.runtime._deferred import DeferredClaim


class SkipDelivery(Exception):
    """Raised by ``before_step``: this delivery ends without running the step (a
    duplicate, a copy while another delivery holds the lease, a stale timer)."""


@dataclass
class Delivery:
    """One delivery of a step, as the middleware see it."""

    task: FlowTask
    header: StepHeader
    step: StepDef
    arg: Any  # the message's input, as sent
    attempt: int = 0  # set by the claim; a resumed step keeps its attempt
    began: float = field(default_factory=time.perf_counter)
    deferred: DeferredClaim | None = None  # a first delivery's claim, still to make

    def claim(self) -> int:
        """Make the deferred claim, if any, before this delivery writes (``ClaimLost`` if
        it does not run); a delivery claimed before it ran has nothing to do. The attempt."""
        if self.deferred is not None:
            self.attempt = self.deferred.make()
        return self.attempt

    @property
    def resumed(self) -> bool:
        """Sent by a timer or a retry: only then can awaits have been recorded."""
        return bool(self.header.timer) or self.attempt > 1

    @property
    def elapsed_ms(self) -> int:
        return round((time.perf_counter() - self.began) * 1000)


class Middleware:
    """Override the hooks you need; each default does nothing."""

    def before_step(self, delivery: Delivery) -> None:
        """Before the body; raise ``SkipDelivery`` to end the delivery here."""

    def around_step(self, delivery: Delivery) -> AbstractContextManager[Any]:
        """A context held while the body runs (and while ``after_failure`` runs)."""
        return nullcontext()

    def after_failure(self, delivery: Delivery, exc: BaseException) -> None:
        """The body raised ``exc``: raise to end the task another way, or return to let
        the next middleware see it (after the last, ``exc`` is raised to Celery)."""

    def after_step(self, delivery: Delivery, result: Any) -> None:
        """The body returned ``result`` (JSON data)."""
