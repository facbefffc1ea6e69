"""A report on a schedule: every day at 06:30 in Berlin (06:30 local through the DST
switches), with a static input. Every worker's timer pump can fire it; each day fires
once however many workers run, and a day missed while no worker ran is sent once, late
(``missed="catch_up_one"``, the default)."""

from __future__ import annotations

from pydantic import BaseModel

from flowqueue import FlowContext, Schedule, step


class ReportRequest(BaseModel):
    title: str
    recipients: list[str]


@step(
    flow="daily_report",
    entry=True,
    schedule=Schedule(
        "30 6 * * *",
        timezone="Europe/Berlin",
        input={"title": "Daily report", "recipients": ["ops@example.com"]},
        name="daily-report",
    ),
)
def send_report(ctx: FlowContext, request: ReportRequest) -> dict[str, object]:
    # flow.started records what started the run: {"kind": "schedule", "name", "tick"}.
    ctx.log.info("report sent", title=request.title, recipients=len(request.recipients))
    return {"title": request.title, "sent_to": request.recipients}
