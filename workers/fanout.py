"""A wide fan-out and join: ``split`` emits one event, ``BRANCHES`` pickers run in
parallel, and ``pack`` runs once, after every picker has emitted."""

from __future__ import annotations

from typing import Any

from flowqueue import FlowContext, step

BRANCHES = 20
FLOW = "order-fanout"


@step(flow=FLOW, entry=True, emits=["order.split"])
def split(ctx: FlowContext, input: dict[str, Any]) -> None:
    ctx.emit("order.split", {"order_id": input.get("order_id", ctx.run_id)})


def _picker(branch: int) -> Any:
    def pick(ctx: FlowContext, inputs: dict[str, Any]) -> int:
        ctx.emit(f"picked.{branch}", {"branch": branch})
        return branch

    return step(
        flow=FLOW,
        subscribes=["order.split"],
        emits=[f"picked.{branch}"],
        name=f"pick_{branch}",
        task_name=f"{__name__}.pick_{branch}",
    )(pick)


pickers = [_picker(branch) for branch in range(BRANCHES)]


@step(flow=FLOW, subscribes=[f"picked.{branch}" for branch in range(BRANCHES)])
def pack(ctx: FlowContext, inputs: dict[str, Any]) -> dict[str, Any]:
    return {"branches": sorted(payload["branch"] for payload in inputs.values())}
