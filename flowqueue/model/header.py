"""The flow context a step's Celery message carries (the ``flowqueue`` task header)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from flowqueue.model.events import NewEvent

HEADER = "flowqueue"  # the Celery message header carrying a step's flow context


class StepHeader(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    run_id: str
    flow: str
    step: str
    timer: str = ""  # the durable timer that sent this delivery (a retry, a resume), if any

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
