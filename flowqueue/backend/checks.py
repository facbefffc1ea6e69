"""Argument checks every store applies before touching its data (nothing is written
when one fails)."""

from __future__ import annotations

from collections.abc import Sequence

from flowqueue.errors import InvalidEvent, MixedRunsError
from flowqueue.model.events import NewEvent, encode_body
from flowqueue.model.ids import is_stream_id


def check_cursor(name: str, value: str | None) -> None:
    if value is not None and not is_stream_id(value):
        raise InvalidEvent(
            f"{name}={value!r} is not an event id; pass an id such as '1719667845123-0' "
            "taken from an event."
        )


def check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise InvalidEvent(f"limit must be >= 0 (or None for all), got {limit}.")


def encode_batch(events: Sequence[NewEvent], max_bytes: int) -> list[bytes]:
    """Encode a batch for one atomic append: one run, each event within the size limit."""
    if not events:
        return []
    run_id, flow = events[0].run_id, events[0].flow
    for event in events:
        if event.run_id != run_id or event.flow != flow:
            raise MixedRunsError(
                f"append_many got events of run {event.run_id!r}/{event.flow!r} and "
                f"{run_id!r}/{flow!r}; appends are atomic per run, so call it once per run."
            )
    return [encode_body(event, max_bytes) for event in events]
