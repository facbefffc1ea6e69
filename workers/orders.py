"""An order: validate, then reserve stock and charge the card in parallel, then ship
once both are done (a join)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from flowqueue import FlowContext, step


class Item(BaseModel):
    sku: str
    quantity: int = Field(gt=0)


class Order(BaseModel):
    order_id: str
    items: list[Item] = Field(min_length=1)
    card: str


@step(flow="order", entry=True, emits=["order.validated"])
def validate(ctx: FlowContext, order: Order) -> dict[str, Any]:
    total = sum(item.quantity for item in order.items)
    ctx.state.set("order_id", order.order_id)
    ctx.log.info("order validated", order_id=order.order_id, items=total)
    ctx.emit("order.validated", {"order_id": order.order_id, "items": total, "card": order.card})
    return {"items": total}


@step(flow="order", subscribes=["order.validated"], emits=["stock.reserved"])
def reserve_stock(ctx: FlowContext, inputs: dict[str, Any]) -> dict[str, Any]:
    order = inputs["order.validated"]
    reservation = f"res-{order['order_id']}"
    ctx.emit("stock.reserved", {"reservation": reservation})
    return {"reservation": reservation}


@step(flow="order", subscribes=["order.validated"], emits=["card.charged"])
def charge_card(ctx: FlowContext, inputs: dict[str, Any]) -> dict[str, Any]:
    order = inputs["order.validated"]
    charge = f"ch-{order['order_id']}"
    ctx.log.info("card charged", card=order["card"][-4:])
    ctx.emit("card.charged", {"charge": charge})
    return {"charge": charge}


@step(flow="order", subscribes=["stock.reserved", "card.charged"])
def ship(ctx: FlowContext, inputs: dict[str, Any]) -> dict[str, Any]:
    # A join: runs once, after both events, with each payload under its event name.
    tracking = f"trk-{ctx.state.get('order_id')}"
    ctx.state.set("tracking", tracking)
    return {
        "tracking": tracking,
        "reservation": inputs["stock.reserved"]["reservation"],
        "charge": inputs["card.charged"]["charge"],
    }
