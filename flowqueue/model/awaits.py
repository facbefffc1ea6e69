"""Durable awaits: a step pauses for a time, an event or a trigger without holding a worker.

A step that awaits is suspended: the await is recorded (an ``AwaitRecord`` in the coordinator
and a ``step.await.*`` event in the log), the task ends, and a timer, an event or a
trigger resume sends the step again. It then runs from the top, and every await it
already passed returns its recorded result (replay), so code before an await must be
safe to repeat or sit in ``ctx.once``. Resume, timeout and duplicate deliveries race for
one atomic claim in the coordinator; exactly one wins.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic_core import from_json, to_json

from flowqueue.errors import AwaitTimeout, InvalidAwait, InvalidSignal, NonDeterminismError
from flowqueue.model.validation import check_identifier, check_json

AwaitKind = Literal["time", "event", "trigger", "once"]
AwaitState = Literal["pending", "resumed", "timeout", "done", "cancelled"]
Seconds = float | int | timedelta
Match = dict[str, str | int | float | bool | None]

_MATCH_SCALARS = (str, int, float, bool, type(None))


class Suspended(BaseException):  # control flow, not an error
    """Ends a step's execution at an await (a ``BaseException``, so a step's
    ``except Exception`` cannot swallow it). The step runs again when the await resolves."""


class AwaitRecord(BaseModel):
    """The coordinator's record of one await (or ``once`` block) a step reached."""

    model_config = ConfigDict(extra="ignore")

    kind: AwaitKind
    name: str
    state: AwaitState
    result: str | None = None  # JSON of the recorded result
    timer: str = ""  # its wake or timeout timer
    wkey: str = ""  # event wait: the waiters hash ...
    waiter: str = ""  # ... and its field there
    tkey: str = ""  # trigger wait: the trigger's key

    def encoded(self) -> str:
        return self.model_dump_json()

    def value(self) -> Any:
        return None if self.result is None else from_json(self.result)


@dataclass(frozen=True)
class AwaitOutcome:
    """What registering an await did: ``suspended`` (the step stops here), ``resolved``
    (an event emitted since the step began waiting matched at once), ``exists`` (a
    concurrent copy registered it first) or ``gone`` (the run ended or the step is no
    longer this delivery's to run)."""

    state: Literal["suspended", "resolved", "exists", "gone"]
    record: AwaitRecord | None = None


def seconds_of(value: Seconds, what: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds != seconds or seconds < 0:
        raise InvalidAwait(
            f"{what} must be a number of seconds >= 0 (or a timedelta), not {value!r}"
        )
    return seconds


def ms_of(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise InvalidAwait(
            f"sleep_until({moment!r}): use a timezone-aware datetime, e.g. datetime.now(UTC)."
        )
    return round(moment.timestamp() * 1000)


def iso_of_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def check_signal_name(name: Any) -> str:
    return check_identifier("event name", name, InvalidSignal)


def check_match(match: Any) -> Match | None:
    """``match`` compares top-level payload fields for equality with JSON scalars."""
    if match is None:
        return None
    if not isinstance(match, dict) or not all(
        isinstance(k, str) and isinstance(v, _MATCH_SCALARS) for k, v in match.items()
    ):
        raise InvalidSignal(
            f"match={match!r}: use a dict of payload field -> string, number, bool or None "
            "(top-level fields, compared for equality)."
        )
    check_json(match, "match")
    return match or None


def new_trigger_id() -> str:
    """Unguessable (192 random bits), so the id alone authorises a resume."""
    return "trg_" + secrets.token_urlsafe(24)


def replayed(record: AwaitRecord, key: str) -> Any:
    """The recorded outcome of an await the step already passed."""
    if record.state in ("resumed", "done"):
        return record.value()
    if record.state == "timeout":
        raise AwaitTimeout(
            f"await {key} ({record.kind} {record.name!r}) timed out; catch AwaitTimeout in "
            "the step to go on without it.",
            step=key.rpartition("#")[0],
        )
    raise Suspended  # pending or cancelled: this execution stops here


def check_same(key: str, record: AwaitRecord, kind: AwaitKind, name: str) -> None:
    if (record.kind, record.name) != (kind, name):
        raise NonDeterminismError(
            f"await {key} replayed as {kind} {name!r} but the step first reached "
            f"{record.kind} {record.name!r} there. A step must reach its awaits in the same "
            "order every time it runs: branch on recorded values (ctx.once, await results), "
            "not on the clock, randomness or outside state.",
            step=key.rpartition("#")[0],
        )


def encode(value: Any, what: str) -> str:
    check_json(value, what)
    return to_json(value).decode()
