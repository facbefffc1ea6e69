"""Deferred claims: a step's first delivery runs its body before its claim.

A message that a script queued once, in the call that decided to send it (a run's start,
an emit's claim: direct sends), is the only message of its step instance, and a delivery
of it that the broker does not mark ``redelivered`` is its first. Its claim cannot find
the step finished or running elsewhere, so it is deferred: the body starts at once, and
the claim is made when something first needs it:

- the body's first write: an emit carries it (one call, ``emit.lua``); a state write, a
  log line, an await or ``once`` make it first;
- the step's completion: claim and completion in one call (``claim_finish.lua``), so a
  step that ends quickly costs one round trip less;
- a failure (the claim first, then the failure is recorded as before);
- ``FLOWQUEUE_CLAIM_DEFER_SECONDS`` into the body (the lease keeper makes it): a longer
  step shows as running, and holds its lease, as any other.

A claim that does not say *run* (the run was cancelled meanwhile) ends the delivery with
``ClaimLost`` and nothing of it is written. Every other delivery (a redelivery, a timer's,
a retry's, a re-send) claims before it runs, as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from flowqueue.backend.coordinator import StepStart
from flowqueue.model.events import NewEvent

T = TypeVar("T")


class ClaimLost(BaseException):  # not an error: like SystemExit, it ends a delivery
    """A deferred claim did not win: the delivery ends, and writes nothing. A
    ``BaseException`` so that a step's ``except Exception`` does not swallow it."""

    def __init__(self, start: StepStart) -> None:
        super().__init__(start.decision)
        self.start = start


class DeferredClaim:
    """The claim of one first delivery, made once, by whichever needs it first (the
    body's thread, or the lease keeper's): ``make()`` alone, or ``settle()`` with the
    completion."""

    def __init__(self, started: NewEvent, claim: Callable[[], StepStart], due: float) -> None:
        self.started = started  # the step.started the claim appends ("$attempt")
        self._claim = claim
        self.due = due  # time.monotonic() by which the lease keeper makes it
        self._lock = threading.Lock()
        self._start: StepStart | None = None

    @property
    def pending(self) -> bool:
        return self._start is None

    @property
    def won(self) -> bool:
        return self._start is not None and self._start.decision == "run"

    def make(self) -> int:
        """The claim, made if not yet; its attempt. Raises ``ClaimLost`` unless it runs."""
        with self._lock:
            if self._start is None:
                self._start = self._claim()
            start = self._start
        if start.decision != "run":
            raise ClaimLost(start)
        return start.attempt

    def settle(
        self, together: Callable[[], tuple[StepStart, T | None]], alone: Callable[[int], T]
    ) -> T:
        """``together`` (the claim and this write in one call: what it wrote, or None if
        the claim did not run) if the claim is still to make, else ``alone`` (the write,
        given the attempt) after it. ``ClaimLost`` if the claim does not run."""
        with self._lock:
            if self._start is None:
                start, written = together()
                if start.decision == "again":  # it has had an attempt: claim as any delivery
                    start = self._claim()
                self._start = start
                if written is not None:
                    return written
        return alone(self.make())  # made before, or just now without a write
