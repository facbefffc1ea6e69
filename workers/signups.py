"""Runs started by a signal: each `user.signed_up` starts one run of `welcome` and one of
`crm-sync`, with the signal's payload as their input (checked against SignUp first)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from flowqueue import FlowContext, step


class SignUp(BaseModel):
    user_id: str = Field(min_length=1)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    plan: Literal["free", "pro"] = "free"


@step(flow="welcome", entry=True, on_event="user.signed_up", emits=["welcome.sent"])
def send_welcome(ctx: FlowContext, signup: SignUp) -> dict[str, str]:
    # The input model is the signal's schema: a payload that does not fit is refused
    # (InvalidInput, HTTP 422) before the signal is recorded or any run starts.
    ctx.log.info("welcome mail sent", email=signup.email)
    ctx.emit("welcome.sent", {"user_id": signup.user_id, "plan": signup.plan})
    return {"sent_to": signup.email}


@step(flow="welcome", subscribes="welcome.sent")
def pick_tips(ctx: FlowContext, inputs: dict[str, dict[str, str]]) -> str:
    return "pro-tips" if inputs["welcome.sent"]["plan"] == "pro" else "starter-tips"


@step(flow="crm-sync", entry=True, on_event="user.signed_up")
def add_contact(ctx: FlowContext, signup: SignUp) -> dict[str, str]:
    contact = f"crm-{signup.user_id}"
    ctx.state.set("contact", contact)
    return {"contact": contact}
