"""The Redis store's commands without I/O: arguments in, parsed replies out.

``RedisEventStore`` (sync) and ``AsyncRedisEventStore`` both call these, so the two APIs
cannot drift apart; each adds only the network call.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any, TypeVar

from flowqueue.backend.archive import RunCursor
from flowqueue.backend.checks import check_cursor, check_limit, encode_batch
from flowqueue.backend.live import HasId
from flowqueue.backend.redis.keys import Keys
from flowqueue.backend.store import FeedEntry, FlowStats, RunSummary
from flowqueue.errors import InvalidEvent
from flowqueue.model.events import Event, NewEvent, decode_event, unreadable
from flowqueue.model.ids import beyond, is_stream_id
from flowqueue.settings import Settings

# One XRANGE / XREVRANGE: (reverse, key, near bound, far bound, count).
RangeRequest = tuple[bool, str, str, str, int]
T = TypeVar("T", bound=HasId)
Entries = Sequence[tuple[bytes, dict[bytes, bytes]]]  # an XRANGE reply
Plan = Generator[RangeRequest, Any, list[T]]


class RedisCommands:
    def __init__(self, settings: Settings) -> None:
        self.keys = Keys(settings.key_prefix)
        self.max_payload = settings.max_payload_bytes
        self.feed_maxlen = settings.feed_maxlen
        self.page_size = settings.read_page_size

    def run_call(self, run_id: str, flow: str) -> dict[str, Any]:
        """The keys and arguments of run_lib.lua, which every per-run script starts with."""
        keys = self.keys
        return {
            "stream": keys.run_stream(run_id),
            "meta": keys.run_meta(run_id),
            "runs": keys.flow_runs(flow),
            "feed": keys.feed,
            "stats": keys.flow_stats(flow),
            "run_live": keys.run_live(run_id),
            "feed_live": keys.feed_live,
            "feed_maxlen": self.feed_maxlen,
            "run_id": run_id,
            "flow": flow,
        }

    def append_call(self, events: Sequence[NewEvent]) -> dict[str, Any]:
        """append.lua's names for a batch ({} for none); raises before anything is sent."""
        bodies = encode_batch(events, self.max_payload)
        if not bodies:
            return {}
        kinds = " ".join([event.kind for event in events])
        return self.run_call(events[0].run_id, events[0].flow) | {"kinds": kinds, "bodies": bodies}

    @staticmethod
    def appended(events: Sequence[NewEvent], ids: Sequence[bytes]) -> list[Event]:
        return [Event.stamped(e, i.decode()) for e, i in zip(events, ids, strict=True)]

    def range_plan(
        self, run_id: str, cursor: str | None, limit: int | None, *, reverse: bool
    ) -> Plan[Event]:
        """Page through a run's log: yields requests, is sent their replies, returns events.

        ``cursor`` is exclusive: events after it (forward) or before it (reverse).
        """
        key = self.keys.run_stream(run_id)

        def decode(entries: Entries) -> list[Event]:
            # Written by append.lua (one field ``e``); a record that cannot be decoded
            # becomes a placeholder, never an exception.
            return [decode_event(i, fields.get(b"e"), key, run_id) for i, fields in entries]

        return self._paged(key, cursor, limit, reverse, decode)

    def feed_plan(self, after: str | None, limit: int | None) -> Plan[FeedEntry]:
        """Page forward through the lifecycle feed after feed position ``after``."""
        return self._paged(self.keys.feed, after, limit, False, self.decode_feed)

    @staticmethod
    def flow_stats(raw: Any) -> FlowStats:
        """HGETALL of the flow's counters hash (``step_ms_le_<bucket>``: the histogram)."""
        counters = {k.decode(): int(v) for k, v in raw.items()}
        prefix = "step_ms_le_"
        buckets = {k.removeprefix(prefix): v for k, v in counters.items() if k.startswith(prefix)}
        return FlowStats.model_validate({**counters, "step_ms_buckets": buckets})

    def decode_feed(self, entries: Entries) -> list[FeedEntry]:
        """Feed entries hold the event body ``e`` and its id in its run's log ``id``."""
        key = self.keys.feed
        out = []
        for feed_id, fields in entries:
            position = feed_id.decode()
            event_id = fields.get(b"id", b"")
            if not is_stream_id(event_id.decode(errors="replace")):
                event = unreadable(position, key, "", "the feed entry has no valid event id")
            else:
                event = decode_event(event_id, fields.get(b"e"), key)
            out.append(FeedEntry(id=position, event=event))
        return out

    def _paged(
        self,
        key: str,
        cursor: str | None,
        limit: int | None,
        reverse: bool,
        decode: Callable[[Entries], list[T]],
    ) -> Plan[T]:
        check_cursor("before" if reverse else "after", cursor)
        check_limit(limit)
        out: list[T] = []
        near = beyond(cursor, reverse) if cursor else ("+" if reverse else "-")
        if near is None:
            return out  # nothing lies beyond the end of the id space
        far = "-" if reverse else "+"
        while limit is None or len(out) < limit:
            count = self.page_size if limit is None else min(self.page_size, limit - len(out))
            page = decode((yield reverse, key, near, far, count))
            out.extend(page)
            if len(page) < count:
                break
            near = f"({page[-1].id}"
        return out

    def list_runs_call(
        self, flow: str, limit: int, before: str | None, cursor: RunCursor | None = None
    ) -> dict[str, Any]:
        """list_runs.lua's names; ``cursor``, with the ``before`` run's start, when it is
        known (an archived run's keys are gone, so the script cannot read it)."""
        check_limit(limit)
        runs, meta = self.keys.flow_runs(flow), self.keys.run_meta("%s")
        ms = "" if cursor is None else str(cursor.started_ms)
        named = {"runs": runs, "limit": limit, "before": before or "", "meta_template": meta}
        return named | {"before_ms": ms}

    @staticmethod
    def list_runs_result(
        rows: Sequence[Sequence[bytes]] | None, before: str | None
    ) -> list[RunSummary]:
        if rows is None:  # list_runs.lua found no run ``before``
            raise unknown_cursor(before)
        return [RunSummary.from_fields(*(field.decode() for field in row)) for row in rows]


def unknown_cursor(before: str | None) -> InvalidEvent:
    """A run list's ``before`` that is no run of the flow."""
    return InvalidEvent(
        f"before={before!r} is not a run of this flow; pass a run id from a previous page."
    )
