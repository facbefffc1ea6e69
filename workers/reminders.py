"""A delayed notification: the run sleeps durably (no worker is held, and a worker
restart loses nothing), then sends; a follow-up waits once more, declared on the step."""

from __future__ import annotations

from pydantic import BaseModel

from flowqueue import FlowContext, Sleep, step


class Reminder(BaseModel):
    user: str
    message: str
    delay_seconds: float = 2.0


@step(flow="reminder", entry=True, emits=["reminder.sent"])
def send_reminder(ctx: FlowContext, reminder: Reminder) -> dict[str, str]:
    # Runs once even though the step runs again after the sleep (its result is recorded).
    ticket = ctx.once("open-ticket", lambda: f"rem-{ctx.run_id[-6:]}")
    ctx.sleep(reminder.delay_seconds)
    ctx.log.info("reminder sent", user=reminder.user, ticket=ticket)
    ctx.emit("reminder.sent", {"user": reminder.user, "ticket": ticket})
    return {"ticket": ticket}


@step(flow="reminder", subscribes="reminder.sent", await_before=Sleep(1))
def follow_up(ctx: FlowContext, inputs: dict[str, dict[str, str]]) -> str:
    sent = inputs["reminder.sent"]
    ctx.log.info("follow-up sent", user=sent["user"])
    return f"followed up {sent['ticket']}"
