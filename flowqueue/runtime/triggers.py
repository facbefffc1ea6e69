"""What the API and the CLI show of start triggers: every schedule, event trigger
(``on_event``) and webhook of the app with its status, last firing and (schedules) next
fire times; a trigger's history from the trigger registry; pausing and resuming a
schedule (recorded there as ``trigger.paused`` / ``trigger.resumed``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from flowqueue.backend.redis.triggers import (
    Declaration,
    TriggerEvent,
    TriggerEventKind,
    TriggerKind,
)
from flowqueue.errors import FlowqueueError, UnknownSchedule
from flowqueue.model.ids import Timestamp, ms_to_datetime
from flowqueue.model.schedules import MissedPolicy, ScheduleSpec, next_fire_times
from flowqueue.model.timers import now_ms
from flowqueue.model.validation import shown
from flowqueue.runtime.engine import Flowqueue

NEXT_FIRE_TIMES = 3  # how many a listing shows
_ORDER: dict[TriggerKind, int] = {"schedule": 0, "event": 1, "webhook": 2}


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
    declared_at: Timestamp | None = Field(
        default=None,
        description="When a worker's code first declared it as it is now (null: only the "
        "code of the process answering declares it; no worker has started with it yet).",
    )
    declared_by: str | None = Field(default=None, description="That worker's hostname.")


class TriggerPage(BaseModel):
    firings: list[FiringInfo] = Field(description="Newest first.")
    next_before: str | None = Field(
        default=None, description="Pass as ?before= for older records; null at the oldest."
    )


def list_triggers(fq: Flowqueue, count: int = NEXT_FIRE_TIMES) -> list[TriggerInfo]:
    """Every start trigger that a worker declared (the trigger registry) or this
    process's code declares: schedules, then event triggers, then webhooks, by name. A
    worker's declaration wins: its code is what fires."""
    registry, now = fq.trigger_registry, now_ms()
    declared = registry.declared()
    found: dict[str, tuple[Declaration, TriggerEvent | None]] = {
        field: (Declaration.of(event), event) for field, (_, event) in declared.items()
    }
    for decl in fq.flows.declarations():
        found.setdefault(decl.field, (decl, None))
    states = fq.schedules.states()
    last = {field: FiringInfo.of(*entry) for field, entry in registry.last_fired().items()}
    listed: list[TriggerInfo] = []
    for field, (decl, event) in found.items():
        info = TriggerInfo(
            kind=decl.trigger,
            name=decl.name,
            flow=decl.flow,
            status="active",
            last_fired=last.get(field),
            declared_at=None if event is None else event.ts,
            declared_by=None if event is None else event.worker,
        )
        spec = _spec(decl)
        if spec is not None:
            state = states.get(spec.name)
            paused = state is not None and state.paused_ms is not None
            ticks = [] if paused else next_fire_times(spec, now, count)
            info.status = "paused" if paused else "active"
            info.next_fire_times = [ms_to_datetime(tick) for tick in ticks]
            info.cron, info.timezone, info.missed = spec.cron, spec.timezone, spec.missed
        listed.append(info)
    return sorted(listed, key=lambda t: (_ORDER[t.kind], t.name, t.flow))


def _spec(decl: Declaration) -> ScheduleSpec | None:
    """A declared schedule's spec; None for another kind (or settings this version of
    flowqueue cannot read: a newer worker's)."""
    if decl.trigger != "schedule":
        return None
    try:
        return ScheduleSpec(name=decl.name, flow=decl.flow, **decl.settings)
    except (ValidationError, FlowqueueError, TypeError):
        return None


def declares_trigger(fq: Flowqueue, name: str) -> bool:
    """Whether this process's code or a worker's declares a start trigger ``name``."""
    if fq.flows.declares_trigger(name):
        return True
    return any(event.name == name for _, event in fq.trigger_registry.declared().values())


def trigger_history(
    fq: Flowqueue, name: str, before: str | None = None, limit: int = 50
) -> TriggerPage:
    """A page of trigger ``name``'s records (any kind), newest first, before ``before``."""
    entries = fq.trigger_registry.history(name, before=before, count=limit)
    firings = [FiringInfo.of(entry_id, event) for entry_id, event in entries]
    return TriggerPage(
        firings=firings, next_before=firings[-1].id if len(firings) == limit else None
    )


def schedule_of(fq: Flowqueue, name: str) -> ScheduleSpec:
    """Schedule ``name`` as this process's code or a worker declares it;
    ``UnknownSchedule`` (naming the known ones) when neither does."""
    local = fq.flows.schedules.get(name)
    if local is not None:
        return local
    declared = [
        Declaration.of(event)
        for _, event in fq.trigger_registry.declared().values()
        if event.trigger == "schedule"
    ]
    for decl in declared:
        spec = _spec(decl) if decl.name == name else None
        if spec is not None:
            return spec
    known = ", ".join(sorted({*fq.flows.schedules, *(d.name for d in declared)})) or "none"
    raise UnknownSchedule(
        f"no schedule {shown(name)}; known schedules: {known} (GET /api/_triggers, "
        "flowqueue schedules).",
        schedule=name,
    )


def pause_schedule(fq: Flowqueue, name: str, pause: bool = True) -> bool:
    """Pause (or resume) schedule ``name``; False if it was so already. ``UnknownSchedule``
    if no code declares it (Redis would hold state for any name)."""
    schedule_of(fq, name)
    backend, at = fq.schedules, now_ms()
    return backend.pause(name, at) if pause else backend.resume(name, at)
