"""The trigger registry: one capped stream (``Keys.trigger_registry``) of what start
triggers did, as the worker registry is one of what workers did.

Each entry is a ``TriggerEvent``: ``trigger.declared`` and ``trigger.undeclared`` (a
worker's code declares a trigger anew or changed, or no longer declares one of the flows
it serves; written at worker start, only on a change), ``trigger.fired`` (a schedule's
tick, a signal or a webhook starting a run; it names the run), ``trigger.paused`` and
``trigger.resumed`` (a schedule's). The declarations themselves are kept in
``Keys.trigger_declared``, so the API and CLI list the triggers of every worker's code,
not only their own. A schedule's firing is appended by ``claim_ticks.lua`` in the same script
that wins its tick, so counting ``trigger.fired`` per (schedule, tick) counts the claims;
other kinds append with ``TriggerRegistry.fired`` right after they start a run. The last
firing of each trigger is also kept in ``Keys.trigger_last`` (the stream is trimmed by
length: the registry's history, never the only copy of a schedule's state).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any, Literal

import redis
from pydantic import BaseModel, ConfigDict, ValidationError

from flowqueue.backend.redis.keys import Keys
from flowqueue.backend.redis.scripts import DECLARE_TRIGGERS, TRIGGER_FIRED
from flowqueue.model.ids import Timestamp, as_text, beyond, format_ts, ms_to_datetime
from flowqueue.model.timers import now_ms

log = logging.getLogger(__name__)

EVENT_FIELD = "event"  # the one field of a stream entry: the TriggerEvent JSON
HISTORY_MAXLEN = 10_000  # entries the registry keeps (about, ``MAXLEN ~``)
TriggerKind = Literal["schedule", "event", "webhook"]
TriggerEventKind = Literal[
    "trigger.declared", "trigger.undeclared", "trigger.fired", "trigger.paused", "trigger.resumed"
]
Entry = tuple[Any, Any]  # (stream id, fields) as redis-py returns them


class TriggerEvent(BaseModel):
    """One record of the trigger registry. ``trigger.fired`` links the trigger to the run
    it started (``run_id``, chosen before the claim); a schedule's names its ``tick_ms``."""

    model_config = ConfigDict(frozen=True)

    kind: TriggerEventKind
    trigger: TriggerKind
    name: str
    ts: Timestamp  # the writer's clock
    flow: str | None = None
    run_id: str | None = None
    tick_ms: int | None = None
    declared: dict[str, Any] | None = None  # a trigger.declared's settings (a schedule's cron)
    worker: str | None = None  # who declared or undeclared it

    def dump(self) -> str:
        return self.model_dump_json(exclude_none=True)


class Declaration(BaseModel):
    """A start trigger as a worker's code declares it: kind, name, flow and its settings
    (a schedule's cron, time zone, missed policy and input; a webhook's verifier)."""

    model_config = ConfigDict(frozen=True)

    trigger: TriggerKind
    name: str
    flow: str
    settings: dict[str, Any] = {}

    @classmethod
    def of(cls, event: TriggerEvent) -> Declaration:
        """The declaration a ``trigger.declared`` event records."""
        return cls(
            trigger=event.trigger,
            name=event.name,
            flow=event.flow or "",
            settings=event.declared or {},
        )

    @property
    def field(self) -> str:
        return last_field(self.trigger, self.name, self.flow)

    def canonical(self) -> str:
        """The JSON two workers with the same code write byte for byte alike."""
        return json.dumps(self.settings, sort_keys=True, separators=(",", ":"))


def last_field(trigger: TriggerKind, name: str, flow: str) -> str:
    """A trigger's field in ``Keys.trigger_last``: one per flow it starts (a signal name
    may start several; ``|`` is in no name)."""
    return f"{trigger}|{name}|{flow}"


def _decode(entry_id: Any, raw: Any) -> TriggerEvent | None:
    try:
        return TriggerEvent.model_validate_json(raw or b"")
    except ValidationError as exc:  # one bad writer must not hide the others
        log.warning("skipping trigger registry entry %s: %s", as_text(entry_id), exc)
        return None


class TriggerRegistry:
    """The trigger registry's calls on one Redis client."""

    def __init__(
        self, client: redis.Redis, keys: Keys, history_maxlen: int = HISTORY_MAXLEN
    ) -> None:
        self.client = client
        self.keys = keys
        self.history_maxlen = history_maxlen

    def fired(
        self,
        trigger: TriggerKind,
        name: str,
        flow: str,
        run_id: str,
        tick_ms: int | None = None,
        at_ms: int | None = None,
    ) -> str:
        """Record that ``trigger`` ``name`` started ``run_id`` of ``flow``; its stream id."""
        event = TriggerEvent(
            kind="trigger.fired",
            trigger=trigger,
            name=name,
            ts=ms_to_datetime(now_ms() if at_ms is None else at_ms),
            flow=flow,
            run_id=run_id,
            tick_ms=tick_ms,
        )
        named = {"registry": self.keys.trigger_registry, "last": self.keys.trigger_last}
        named |= {"field": last_field(trigger, name, flow), "event": event.dump()}
        return as_text(TRIGGER_FIRED.run(self.client, **named, maxlen=self.history_maxlen))

    def declare(
        self, declarations: Iterable[Declaration], flows: Iterable[str], worker: str, at_ms: int
    ) -> int:
        """Record a worker's start triggers, those of ``flows`` (every flow it serves):
        new or changed ones as ``trigger.declared``, ones of those flows it no longer
        declares as ``trigger.undeclared``; nothing when nothing changed. The number of
        events appended."""
        ts = ms_to_datetime(at_ms)
        items: list[str] = []
        for decl in declarations:
            event = TriggerEvent(
                kind="trigger.declared",
                trigger=decl.trigger,
                name=decl.name,
                ts=ts,
                flow=decl.flow,
                declared=decl.settings,
                worker=worker,
            )
            items += [decl.field, decl.canonical(), event.dump()]
        named: dict[str, Any] = {"registry": self.keys.trigger_registry}
        named |= {
            "declared": self.keys.trigger_declared,
            "maxlen": self.history_maxlen,
            "ts": format_ts(ts),
            "worker": worker,
        }
        named |= {"flows": " ".join(flows), "items": items}
        return int(DECLARE_TRIGGERS.run(self.client, **named))

    def declared(self) -> dict[str, tuple[str, TriggerEvent]]:
        """Every start trigger workers declared, by ``last_field``: (stream id, its
        ``trigger.declared`` event)."""
        found: dict[str, tuple[str, TriggerEvent]] = {}
        for raw in self.client.hvals(self.keys.trigger_declared):
            _, _, recorded = as_text(raw).partition("\n")
            entry_id, _, body = recorded.partition(" ")
            event = _decode(entry_id, body)
            if event is not None:
                found[last_field(event.trigger, event.name, event.flow or "")] = (entry_id, event)
        return found

    def last_fired(self) -> dict[str, tuple[str, TriggerEvent]]:
        """Each trigger's last firing by its ``last_field``: (stream id, event)."""
        found: dict[str, tuple[str, TriggerEvent]] = {}
        for raw in self.client.hvals(self.keys.trigger_last):
            entry_id, _, body = as_text(raw).partition(" ")
            event = _decode(entry_id, body)
            if event is not None:
                found[last_field(event.trigger, event.name, event.flow or "")] = (entry_id, event)
        return found

    def events(
        self, after: str = "-", count: int = 100, names: Iterable[str] | None = None
    ) -> list[tuple[str, TriggerEvent]]:
        """Up to ``count`` events after stream id ``after`` (exclusive, ``-`` from the
        first), oldest first, of ``names`` only when given; (stream id, event) each."""
        return self._scan(after, count, names, reverse=False)

    def history(
        self, name: str, before: str | None = None, count: int = 50
    ) -> list[tuple[str, TriggerEvent]]:
        """The events of trigger ``name`` (any kind) before stream id ``before``
        (exclusive; None: from the newest), newest first."""
        return self._scan(before or "+", count, [name], reverse=True)

    def _scan(
        self, start: str, count: int, names: Iterable[str] | None, *, reverse: bool
    ) -> list[tuple[str, TriggerEvent]]:
        wanted = None if names is None else set(names)
        found: list[tuple[str, TriggerEvent]] = []
        stream, page_size = self.keys.trigger_registry, max(count, 500)
        bound = start if start in ("-", "+") else beyond(start, reverse)
        while bound is not None and len(found) < count:
            page: list[Entry] = (
                self.client.xrevrange(stream, bound, "-", count=page_size)
                if reverse
                else self.client.xrange(stream, bound, "+", count=page_size)
            ) or []
            for entry_id, fields in page:
                event = _decode(entry_id, (fields or {}).get(EVENT_FIELD.encode()))
                if event is not None and (wanted is None or event.name in wanted):
                    found.append((as_text(entry_id), event))
                    if len(found) == count:
                        break
            if len(page) < page_size:
                break
            bound = f"({as_text(page[-1][0])}"
        return found
