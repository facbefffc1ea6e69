"""A call to a flaky partner API: it fails twice, then succeeds on the third attempt,
with exponential backoff between attempts (durable timers, not Celery countdowns)."""

from __future__ import annotations

from typing import Any

from flowqueue import FlowContext, Retry, step


class PartnerUnavailable(Exception):
    """The partner API answered 503."""


@step(
    flow="partner-sync",
    entry=True,
    retry=Retry(attempts=3, backoff="exponential", delay=0.2, max_delay=2.0),
)
def call_partner(ctx: FlowContext, input: dict[str, Any]) -> dict[str, Any]:
    if ctx.attempt < 3:
        ctx.log.warning("partner unavailable", attempt=ctx.attempt)
        raise PartnerUnavailable(f"503 from partner (attempt {ctx.attempt})")
    return {"synced": input.get("account", "acme"), "attempts": ctx.attempt}
