"""Waiting for the outside world: an order waits for its payment confirmation (an
event matched on its order id, with a timeout), and an expense waits for a person's
decision (a trigger: an unguessable, single-use id that resumes the step)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from flowqueue import AwaitTimeout, FlowContext, step


class PendingOrder(BaseModel):
    order_id: str
    amount: float
    payment_timeout_seconds: float = 30.0


@step(flow="order-approval", entry=True, emits=["order.paid", "order.expired"])
def await_payment(ctx: FlowContext, order: PendingOrder) -> dict[str, Any]:
    ctx.log.info("waiting for payment", order_id=order.order_id)
    try:
        payment = ctx.wait_for_event(
            "payment.confirmed",
            match={"order_id": order.order_id},
            timeout=order.payment_timeout_seconds,
        )
    except AwaitTimeout:
        ctx.emit("order.expired", {"order_id": order.order_id})
        return {"paid": False}
    ctx.emit("order.paid", {"order_id": order.order_id, "payment": payment})
    return {"paid": True, "payment_id": payment["payment_id"]}


@step(flow="order-approval", subscribes="order.paid")
def fulfil(ctx: FlowContext, inputs: dict[str, Any]) -> str:
    return f"fulfilled {inputs['order.paid']['order_id']}"


class Expense(BaseModel):
    employee: str
    amount: float
    decision_timeout_seconds: float = 3_600.0


@step(flow="expense-approval", entry=True, emits=["expense.approved", "expense.rejected"])
def request_approval(ctx: FlowContext, expense: Expense) -> dict[str, Any]:
    decision = ctx.wait_for_trigger(
        timeout=expense.decision_timeout_seconds,
        info={"question": f"Approve {expense.amount:.2f} for {expense.employee}?"},
        # Called once, when the trigger exists: mail the approve link to a manager here.
        on_trigger=lambda trigger_id: ctx.log.info("approval requested", trigger=trigger_id),
    )
    verdict = "expense.approved" if decision.get("approved") else "expense.rejected"
    ctx.emit(verdict, {"employee": expense.employee, "by": decision.get("by")})
    return decision


@step(flow="expense-approval", subscribes="expense.approved")
def pay_expense(ctx: FlowContext, inputs: dict[str, Any]) -> str:
    return f"paid {inputs['expense.approved']['employee']}"
