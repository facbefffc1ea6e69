"""The seed's example flow: one step sets state and emits, the next subscribes to it."""

from __future__ import annotations

import logging
from typing import Any

from flowqueue import FlowContext, step

log = logging.getLogger(__name__)


@step(flow="example-flow", entry=True, emits=["step1.complete"])
def first_step(ctx: FlowContext, input: dict[str, Any] | None) -> dict[str, Any]:
    name = (input or {}).get("name", "world")  # `flowqueue start example-flow` sends none
    ctx.log.info("first step running", name=name)
    ctx.state.set("greeting", f"hello, {name}")
    ctx.emit("step1.complete", {"name": name})
    return {"greeted": name}


@step(flow="example-flow", subscribes=["step1.complete"])
def second_step(ctx: FlowContext, inputs: dict[str, Any]) -> dict[str, Any]:
    greeting = ctx.state.get("greeting")
    log.info("second step read %r from the run state", greeting)  # recorded in the run
    return {"greeting": greeting, "from_first": inputs["step1.complete"]}
