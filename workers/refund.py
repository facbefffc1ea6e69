"""A flow whose step fails for good: the bank declines, the run fails."""

from __future__ import annotations

from typing import Any

from flowqueue import FlowContext, step


class BankDeclined(Exception):
    """The bank refused the refund."""


@step(flow="refund", entry=True, emits=["refund.requested"])
def request_refund(ctx: FlowContext, input: dict[str, Any]) -> None:
    ctx.emit("refund.requested", {"amount": input.get("amount", 0)})


@step(flow="refund", subscribes=["refund.requested"])
def call_bank(ctx: FlowContext, inputs: dict[str, Any]) -> None:
    amount = inputs["refund.requested"]["amount"]
    ctx.log.warning("bank is declining refunds today", amount=amount)
    raise BankDeclined(f"refund of {amount} declined")
