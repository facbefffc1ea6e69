"""What the API and the CLI show of start triggers: every schedule, event trigger
(``on_event``) and webhook of the app with its status, last firing and (schedules) next
fire times; a trigger's history from the trigger registry; pausing and resuming a
schedule (recorded there as ``trigger.paused`` / ``trigger.resumed``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from flowqueue.backend.redis.triggers import (
    TriggerEvent,
    TriggerEventKind,
    TriggerKind,
    last_field,
)
from flowqueue.model.ids import Timestamp, ms_to_datetime
from flowqueue.model.schedules import MissedPolicy, ScheduleSpec, next_fire_times
from flowqueue.model.timers import now_ms
from flowqueue.runtime.engine import Flowqueue

NEXT_FIRE_TIMES = 3  # how many a listing shows


class FiringInfo(BaseModel):
    """One record of the trigger registry: a firing (and the run it started), a pause or
    a resume."""

    id: str = Field(description="Its id in the trigger registry stream (the page cursor).")
    kind: TriggerEventKind
    trigger: TriggerKind
    name: str
    at: Timestamp = Field(description="When it was recorded.")
    flow: str | None = None
    run_id: str | None = Field(default=None, description="The run the firing started.")
    tick: Timestamp | None = Field(default=None, description="The schedule's tick it fired.")

    @classmethod
    def of(cls, entry_id: str, event: TriggerEvent) -> FiringInfo:
        tick = None if event.tick_ms is None else ms_to_datetime(event.tick_ms)
        return cls(
            id=entry_id,
            kind=event.kind,
            trigger=event.trigger,
            name=event.name,
            at=event.ts,
            flow=event.flow,
            run_id=event.run_id,
            tick=tick,
        )


class TriggerInfo(BaseModel):
    """A start trigger of the app."""

    kind: TriggerKind
    name: str
    flow: str
    status: Literal["active", "paused"]
    last_fired: FiringInfo | None = None
    next_fire_times: list[Timestamp] = Field(
        default_factory=list, description="A schedule's next ticks (none while paused)."
    )
    cron: str | None = None
    timezone: str | None = None
    missed: MissedPolicy | None = None


class TriggerPage(BaseModel):
    firings: list[FiringInfo] = Field(description="Newest first.")
    next_before: str | None = Field(
        default=None, description="Pass as ?before= for older records; null at the oldest."
    )


def list_triggers(fq: Flowqueue, count: int = NEXT_FIRE_TIMES) -> list[TriggerInfo]:
    """Every start trigger of the app: schedules, then event triggers, then webhooks."""
    flows, now = fq.flows, now_ms()
    states = fq.schedules.states()
    last = {
        field: FiringInfo.of(*entry) for field, entry in fq.trigger_registry.last_fired().items()
    }
    found: list[TriggerInfo] = []
    for spec in flows.schedules.values():
        state = states.get(spec.name)
        paused = state is not None and state.paused_ms is not None
        ticks = [] if paused else next_fire_times(spec, now, count)
        found.append(
            TriggerInfo(
                kind="schedule",
                name=spec.name,
                flow=spec.flow,
                status="paused" if paused else "active",
                last_fired=last.get(last_field("schedule", spec.name, spec.flow)),
                next_fire_times=[ms_to_datetime(tick) for tick in ticks],
                cron=spec.cron,
                timezone=spec.timezone,
                missed=spec.missed,
            )
        )
    started: list[tuple[TriggerKind, str, str]] = [
        ("event", event, graph.name) for graph in flows.flows.values() for event in graph.on_event
    ]
    started += [("webhook", name, graph.name) for name, (_, graph) in flows.webhooks.items()]
    for kind, name, flow in started:
        fired = last.get(last_field(kind, name, flow))
        found.append(
            TriggerInfo(kind=kind, name=name, flow=flow, status="active", last_fired=fired)
        )
    return found


def trigger_history(
    fq: Flowqueue, name: str, before: str | None = None, limit: int = 50
) -> TriggerPage:
    """A page of trigger ``name``'s records (any kind), newest first, before ``before``."""
    entries = fq.trigger_registry.history(name, before=before, count=limit)
    firings = [FiringInfo.of(entry_id, event) for entry_id, event in entries]
    return TriggerPage(
        firings=firings, next_before=firings[-1].id if len(firings) == limit else None
    )


def schedule_of(fq: Flowqueue, name: str) -> ScheduleSpec | None:
    """The app's schedule ``name`` (None: no such schedule)."""
    return fq.flows.schedules.get(name)


def pause_schedule(fq: Flowqueue, name: str, pause: bool = True) -> bool:
    """Pause (or resume) schedule ``name`` of the app; False if it was so already.
    The caller checks the name (``schedule_of``): Redis holds state for any name."""
    backend, at = fq.schedules, now_ms()
    return backend.pause(name, at) if pause else backend.resume(name, at)
