"""``Schedule``: a schedule declared next to an entry step,
``@step(flow=..., entry=True, schedule=Schedule("*/5 * * * *", timezone="Europe/Berlin"))``.

The flow is the step's, so a declaration becomes one ``ScheduleSpec`` per flow of the
step (``spec``); its cron, time zone and input are checked when it is declared. When and
how a schedule fires (the DST rule, the missed policies) is ``model/schedules.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowqueue.model.schedules import MissedPolicy, ScheduleSpec

_CHECK_FLOW = "flow"  # a stand-in flow name: the declaration is checked before it has one


@dataclass(frozen=True)
class Schedule:
    """Start a run of the step's flow at each tick of ``cron`` in ``timezone`` (IANA),
    with the static ``input``. ``missed`` is what a restart does with ticks no worker was
    up for: ``catch_up_one`` (fire the latest once, late) or ``skip``. ``name`` (unique
    in the app; default: the flow's name) is how the API and CLI address it."""

    cron: str
    timezone: str = "UTC"
    input: Any = None
    missed: MissedPolicy = "catch_up_one"
    name: str | None = None

    def __post_init__(self) -> None:
        self.spec(_CHECK_FLOW)  # FlowDefinitionError now, where it is declared

    def spec(self, flow: str) -> ScheduleSpec:
        """This schedule on ``flow``."""
        return ScheduleSpec(
            name=self.name or flow,
            flow=flow,
            cron=self.cron,
            timezone=self.timezone,
            input=self.input,
            missed=self.missed,
        )
