"""One delivery of a step: the middleware's hooks around the step's body (the function
between its declared awaits), with the step's ``FlowContext`` bound."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from typing import Any

from flowqueue.authoring.context import FlowContext, bound
from flowqueue.model.validation import to_jsonable
from flowqueue.runtime._deferred import ClaimLost
from flowqueue.runtime.middleware import Delivery, Middleware, SkipDelivery

log = logging.getLogger(__name__)


def run_delivery(
    delivery: Delivery,
    middleware: Sequence[Middleware],
    context_of: Callable[[Delivery], FlowContext],
) -> Any:
    """The delivery's result; None if it ended without running the step or, its claim
    deferred and lost, without writing (its ``attempt`` is then 0)."""
    try:
        return _run(delivery, middleware, context_of)
    except ClaimLost as lost:
        header = delivery.header
        log.info("dropping %s/%s: %s", header.run_id, header.step, lost.start.decision)
        delivery.attempt = 0
        return None


def _run(
    delivery: Delivery,
    middleware: Sequence[Middleware],
    context_of: Callable[[Delivery], FlowContext],
) -> Any:
    try:
        for unit in middleware:
            unit.before_step(delivery)
    except SkipDelivery:
        return None
    ctx = context_of(delivery)
    with ExitStack() as held:
        for unit in middleware:
            held.enter_context(unit.around_step(delivery))
        held.enter_context(bound(ctx))
        try:
            result = _body(delivery, ctx)
        except BaseException as exc:
            if isinstance(exc, ClaimLost):
                raise
            delivery.claim()  # a failure is recorded for the attempt that claimed the step
            for unit in middleware:
                unit.after_failure(delivery, exc)
            raise
    for unit in reversed(middleware):
        unit.after_step(delivery, result)
    return result


def _body(delivery: Delivery, ctx: FlowContext) -> Any:
    """The step's function between its declared awaits."""
    step, task = delivery.step, delivery.task
    value = step.parse_input(delivery.arg, delivery.header.flow)
    if step.await_before is not None:
        ctx.awaited = step.await_before.wait(ctx, value)
    if step.await_after is None:
        return to_jsonable(task.run(ctx, value), "step result")
    # The function must not run again when the step resumes after the await.
    result = ctx.once("__step__", lambda: to_jsonable(task.run(ctx, value), "step result"))
    step.await_after.wait(ctx, value)
    return result
