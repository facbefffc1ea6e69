"""Flows used only by the tests (workers load them with FLOWQUEUE_WORKERS=workers,tests.flows)."""

from __future__ import annotations

import time
from typing import Any

from flowqueue import FlowContext, step


@step(flow="slow", entry=True, emits=["slow.done"])
def slow_step(ctx: FlowContext, input: dict[str, Any]) -> dict[str, Any]:
    ctx.log.info("slow step begins", attempt=ctx.attempt)
    time.sleep(float(input.get("seconds", 3)))
    ctx.emit("slow.done", {"attempt": ctx.attempt})
    return {"attempt": ctx.attempt}


@step(flow="slow", subscribes=["slow.done"])
def after_slow(ctx: FlowContext, inputs: dict[str, Any]) -> dict[str, Any]:
    return inputs["slow.done"]


@step(flow=["audit-a", "audit-b"], entry=True)
def audit(ctx: FlowContext, input: dict[str, Any]) -> str:
    """One step serving two flows."""
    return f"{ctx.flow}:{input.get('what')}"
