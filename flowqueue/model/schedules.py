"""Schedules as data: a cron expression in an IANA time zone, on a flow (``ScheduleSpec``),
the ticks it has (``ticks_after``, ``latest_tick``, ``next_fire_times``), which of them are
due (``due_ticks``). Their firings are recorded in the trigger registry
(``backend/redis/triggers.py``).

A tick is one time a schedule fires, identified by its UTC epoch ms. The expression is
read with cronsim: five fields (minute hour day-of-month month day-of-week) or six with
seconds first, plus ``@yearly``, ``@monthly``, ``@weekly``, ``@daily`` and ``@hourly``.

The DST rule. The expression is matched against the wall clock of the schedule's zone;
each wall-clock match is then placed in time:

- a time that exists once fires then;
- a time the clock skips (a spring-forward gap) fires once, at the first instant after
  the gap (02:30 on the day Berlin goes from 02:00 to 03:00 fires at 03:00 CEST); every
  match inside one gap lands on that instant, and a tick is its instant, so the gap fires
  once however many matches fall in it (``*/15 * * * *`` fires at 03:00, not five
  times). Firing late rather than never keeps a daily job daily, as Vixie and Debian
  cron do;
- a time the clock repeats (a fall-back hour) fires at its first occurrence only: the
  second pass through the hour fires nothing (``0 * * * *`` in Berlin's fall-back fires
  02:00 CEST, then 03:00 CET, two real hours later). Nothing fires twice.

Missed ticks. A tick is missed when it is more than the grace (``GRACE_MS``) past due
when a pump first sees it (no worker ran). ``skip`` drops missed ticks; ``catch_up_one``
(the default) fires the latest missed tick, late and once, and drops the others. Ticks
within the grace fire under both. A schedule with no firing recorded starts now: it never
fires the ticks before it was first seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice, takewhile
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, model_validator

from flowqueue.errors import FlowDefinitionError, InvalidEvent
from flowqueue.model.validation import check_identifier, check_json, shown

MissedPolicy = Literal["skip", "catch_up_one"]

GRACE_MS = 2_000  # a tick this late is still on time (> a pump's poll, < any cron period)
MAX_DUE = 100  # ticks one call hands out: a bound, not a rule (on-time ticks are few)
NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_SECOND = timedelta(seconds=1)


class ScheduleSpec(BaseModel):
    """One schedule: start a run of ``flow`` with ``input`` at each tick of ``cron`` in
    ``timezone``. Every field is checked when it is declared (``FlowDefinitionError``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    flow: str
    cron: str
    timezone: str = "UTC"
    input: Any = None
    missed: MissedPolicy = "catch_up_one"

    @model_validator(mode="after")
    def _check(self) -> ScheduleSpec:
        def refuse(problem: str) -> FlowDefinitionError:
            return FlowDefinitionError(f"schedule {shown(self.name)}: {problem}", flow=self.flow)

        try:
            check_identifier("schedule name", self.name)
            check_identifier("flow name", self.flow)
            check_json(self.input, "its input")
        except InvalidEvent as exc:
            raise refuse(str(exc)) from None
        try:
            next(CronSim(expression(self.cron), datetime(2000, 1, 1)))
        except CronSimError as exc:
            raise refuse(
                f"cron {self.cron!r} is not valid ({exc}); use five fields (minute hour "
                "day-of-month month day-of-week), six with seconds first, or @hourly, "
                "@daily, @weekly, @monthly, @yearly."
            ) from None
        except StopIteration:
            raise refuse(f"cron {self.cron!r} matches no time in 50 years.") from None
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise refuse(
                f"time zone {shown(self.timezone)} is unknown; use an IANA name such as "
                "'Europe/Berlin', 'America/New_York' or 'UTC'."
            ) from None
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # ZoneInfo keeps one instance per key


def expression(cron: str) -> str:
    """The cron fields of ``cron`` (a nickname expanded)."""
    text = " ".join(cron.split())
    return NICKNAMES.get(text.lower(), text)


# -- wall clock and instants ---------------------------------------------------------------


def _local(ms: int, zone: ZoneInfo) -> datetime:
    return (_EPOCH + ms * _MS).astimezone(zone)


def _ms(value: datetime) -> int:
    return (value - _EPOCH) // _MS


def _switch_ms(zone: ZoneInfo, lo: int, hi: int) -> int:
    """The first ms in (lo, hi] with hi's UTC offset: where the offset changed (once)."""
    target = _local(hi, zone).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _local(mid, zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return hi


def instant(wall: datetime, zone: ZoneInfo) -> int:
    """The ms a wall-clock match fires at, by the DST rule (module docstring)."""
    first = _ms(wall.replace(tzinfo=zone, fold=0))  # fold=0: the first of a repeated time
    if _local(first, zone).replace(tzinfo=None) == wall:
        return first
    other = _ms(wall.replace(tzinfo=zone, fold=1))  # in a gap the two folds straddle it
    return _switch_ms(zone, min(first, other), max(first, other))


def _last_wall(ms: int, zone: ZoneInfo) -> datetime:
    """The last wall-clock second whose matches fire at or before ``ms``: a match fires at
    or before ``ms`` exactly when its wall time is not later (``instant`` keeps order)."""
    local = _local(ms, zone)
    if local.fold:  # the repeat of an hour: all of it fired on the first pass, up to its end
        switch = _switch_ms(zone, _ms(local.replace(fold=0)), ms)  # from its first pass
        local = _local(switch - 1, zone)  # the last ms before the repeat, first pass
    return local.replace(tzinfo=None, fold=0, microsecond=0)


# -- ticks -------------------------------------------------------------------------------


def ticks_after(spec: ScheduleSpec, after_ms: int) -> Iterator[int]:
    """Every tick later than ``after_ms``, in order, each once."""
    zone, previous = spec.zone, after_ms
    for wall in CronSim(expression(spec.cron), _last_wall(after_ms, zone)):
        tick = instant(wall, zone)
        if tick > previous:  # the matches in one gap share their instant
            previous = tick
            yield tick


def latest_tick(spec: ScheduleSpec, upto_ms: int) -> int | None:
    """The last tick at or before ``upto_ms`` (None if there is none within 50 years)."""
    zone = spec.zone
    walls = CronSim(expression(spec.cron), _last_wall(upto_ms, zone) + _SECOND, reverse=True)
    return next((instant(wall, zone) for wall in walls), None)


def next_fire_times(spec: ScheduleSpec, after_ms: int, count: int) -> list[int]:
    """The next ``count`` ticks after ``after_ms`` (fewer if the expression runs out)."""
    return list(islice(ticks_after(spec, after_ms), count))


def due_ticks(
    spec: ScheduleSpec, last_fired_ms: int | None, now_ms: int, grace_ms: int = GRACE_MS
) -> list[int]:
    """The ticks to fire now, in order: those in (``last_fired_ms``, ``now_ms``] that are
    within ``grace_ms`` of now, after the latest older one under ``catch_up_one``.
    ``last_fired_ms`` None (never fired) starts the window at ``now_ms - grace_ms``."""
    on_time = now_ms - grace_ms
    start = on_time if last_fired_ms is None else last_fired_ms
    due = list(
        islice(takewhile(lambda t: t <= now_ms, ticks_after(spec, max(start, on_time))), MAX_DUE)
    )
    if spec.missed == "catch_up_one" and start < on_time:
        missed = latest_tick(spec, on_time)
        if missed is not None and missed > start:
            due.insert(0, missed)
    return due
