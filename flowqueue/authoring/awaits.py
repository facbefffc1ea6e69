"""The declarative awaits of ``@step(await_before=..., await_after=...)``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flowqueue.authoring.context import FlowContext
from flowqueue.model.awaits import Match, Seconds


@dataclass(frozen=True)
class Sleep:
    """Pause for ``seconds`` (a number or a timedelta)."""

    seconds: Seconds

    def wait(self, ctx: FlowContext, input: Any) -> Any:
        ctx.sleep(self.seconds)
        return None

    def describe(self) -> str:
        return f"sleep {_seconds(self.seconds)}"


@dataclass(frozen=True)
class WaitForEvent:
    """Pause until event ``name`` whose payload fits ``match`` (a dict, or a function of
    ``(ctx, input)`` returning one) is emitted; ``AwaitTimeout`` after ``timeout``."""

    name: str
    match: Match | Callable[[FlowContext, Any], Match] | None = None
    timeout: Seconds | None = None

    def wait(self, ctx: FlowContext, input: Any) -> Any:
        match = self.match(ctx, input) if callable(self.match) else self.match
        return ctx.wait_for_event(self.name, match=match, timeout=self.timeout)

    def describe(self) -> str:
        return f"event {self.name}{_timeout(self.timeout)}"


@dataclass(frozen=True)
class WaitForTrigger:
    """Pause until ``flowqueue.resume(trigger_id, payload)``; ``AwaitTimeout`` after
    ``timeout``. ``info`` is shown with the await (what the person should decide)."""

    timeout: Seconds | None = None
    info: dict[str, Any] | None = None

    def wait(self, ctx: FlowContext, input: Any) -> Any:
        return ctx.wait_for_trigger(timeout=self.timeout, info=self.info)

    def describe(self) -> str:
        return f"trigger{_timeout(self.timeout)}"


def _seconds(value: Seconds) -> str:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return f"{seconds:g} s"


def _timeout(value: Seconds | None) -> str:
    """How a declared await's timeout reads in a flow's description (the dashboard)."""
    return "" if value is None else f" (timeout {_seconds(value)})"


AwaitSpec = Sleep | WaitForEvent | WaitForTrigger
