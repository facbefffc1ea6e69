"""Runs started by a webhook: the payment provider POSTs each event to
``/api/_webhooks/payments``, signed the Standard Webhooks way with the secret in
``$PAYMENTS_WEBHOOK_SECRET`` (``whsec_...``; set ``$PAYMENTS_WEBHOOK_SECRET_OLD`` too while
rotating). Only the API processes read the secret; the workers never need it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from flowqueue import FlowContext, StandardWebhooks, Webhook, step


class Payment(BaseModel):
    payment_id: str = Field(min_length=1)
    amount_cents: int = Field(gt=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class PaymentEvent(BaseModel):
    # The Standard Webhooks payload shape: a type, and the data it is about.
    type: Literal["payment.succeeded", "payment.refunded"]
    data: Payment


PAYMENTS = Webhook(
    name="payments",
    verifier=StandardWebhooks(
        secret_env=("PAYMENTS_WEBHOOK_SECRET", "PAYMENTS_WEBHOOK_SECRET_OLD")
    ),
)


@step(flow="payments", entry=True, webhook=PAYMENTS, emits=["payment.booked"])
def receive_payment(ctx: FlowContext, event: PaymentEvent) -> str:
    # Runs only for a delivery whose signature checked out and whose body fits
    # PaymentEvent: anything else was refused (401 / 422) before a run was written.
    sign = -1 if event.type == "payment.refunded" else 1
    ctx.emit(
        "payment.booked",
        {"payment_id": event.data.payment_id, "cents": sign * event.data.amount_cents},
    )
    return event.type


@step(flow="payments", subscribes="payment.booked")
def book_payment(ctx: FlowContext, inputs: dict[str, dict[str, int | str]]) -> dict[str, int | str]:
    booked = inputs["payment.booked"]
    ctx.state.set("booked", booked)
    return booked
