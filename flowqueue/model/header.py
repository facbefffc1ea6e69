"""The flow context a step's Celery message carries (the ``flowqueue`` task header)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from flowqueue.model.events import NewEvent

HEADER = "flowqueue"  # the Celery message header carrying a step's flow context


class StartNote(BaseModel):
    """A new run's start, carried by its entry steps' messages: the starter records it
    just after sending them, and the first claim of an entry step records it if it gets
    there first, so a run whose entry step was sent starts even if its starter dies."""

    model_config = ConfigDict(frozen=True)

    body: str  # the flow.started event, encoded
    entries: list[str]  # the entry steps, all queued by the start
    made_ms: int  # when it was made: too late to record past the shortest retention


class StepHeader(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: str
    flow: str
    step: str
    timer: str = ""  # the durable timer that sent this delivery (a retry, a resume), if any
    start: StartNote | None = None  # a new run's start, on its entry steps' messages
    # Queued once, by the call that decided to send it: its first delivery may defer its
    # claim (flowqueue.runtime._deferred).
    queued_once: bool = False
    # The W3C traceparent of the span that sent it (FLOWQUEUE_TRACING: runtime/_tracing.py).
    traceparent: str = ""

    def event(self, kind: str, attempt: int | str, /, **data: Any) -> NewEvent:
        """An event of this step instance, tagged with its attempt."""
        return NewEvent(
            kind=kind,
            run_id=self.run_id,
            flow=self.flow,
            step=self.step,
            data=data,
            meta={"attempt": attempt},
        )


def header_of(request: Any) -> StepHeader | None:
    """The flow context a Celery request carries (None: not a step's message). Celery puts
    custom headers on the request itself, or under ``headers`` (eager calls, old workers)."""
    raw = getattr(request, HEADER, None) or (getattr(request, "headers", None) or {}).get(HEADER)
    return None if raw is None else StepHeader.model_validate(raw)
