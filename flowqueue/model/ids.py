"""Identifiers: time-sortable run ids and Redis stream ids.

Stream ids are ``"<ms>-<seq>"``; they are strictly increasing per run, and the
event timestamp is the id's millisecond part, so ``ts`` and ``id`` never disagree.
"""

from __future__ import annotations

import functools
import os
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import PlainSerializer

StreamId = tuple[int, int]


def new_run_id() -> str:
    """A UUIDv7 (RFC 9562): 48-bit Unix ms, then randomness; sorts by creation time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= (rand >> 68) << 64  # 12 bits rand_a
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def parse_stream_id(value: str) -> StreamId:
    """``"1719667845123-4"`` -> ``(1719667845123, 4)``; a bare ``"<ms>"`` means seq 0."""
    ms, _, seq = value.partition("-")
    return int(ms), int(seq or 0)


U64_MAX = 2**64 - 1  # Redis keeps both halves of a stream id in 64 bits


def _decimal_up_to(limit: int) -> str:
    """A regex for the decimal numbers 0..``limit`` (leading zeros allowed): every
    shorter number, or one of ``limit``'s length that is below it digit by digit."""
    digits = str(limit)
    width = len(digits)
    branches = [f"[0-9]{{1,{width - 1}}}"] if width > 1 else []
    for i, digit in enumerate(digits):
        if digit != "0":
            rest = width - i - 1
            tail = f"[0-9]{{{rest}}}" if rest else ""
            branches.append(f"{digits[:i]}[0-{int(digit) - 1}]{tail}")
    branches.append(digits)
    return "(?:" + "|".join(branches) + ")"


_HALF = _decimal_up_to(U64_MAX)  # ASCII digits only: str.isdigit would take any script's
_STREAM_ID = re.compile(f"{_HALF}(?:-{_HALF})?")
# The same rule for OpenAPI (so clients see the real range), with the "-<seq>" required.
STREAM_ID_PATTERN = f"^{_HALF}-{_HALF}$"


def is_stream_id(value: str) -> bool:
    """A stream id Redis accepts: ``<ms>`` or ``<ms>-<seq>``, each half within 64 bits."""
    return _STREAM_ID.fullmatch(value) is not None


def stream_id_ms(value: str) -> int:
    return int(value.partition("-")[0])


@functools.lru_cache(maxsize=4096)  # events of one batch or page share their millisecond
def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def datetime_to_ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1000)


def format_ts(value: datetime) -> str:
    """ISO-8601 UTC with milliseconds: ``2024-06-29T13:30:45.123Z``."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A datetime field written as format_ts gives it (UTC, ISO 8601 with milliseconds).
Timestamp = Annotated[datetime, PlainSerializer(format_ts)]


def as_text(value: Any) -> str:
    """An id or name as Redis replies it (bytes) or as given (str)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def beyond(cursor: str, reverse: bool) -> str | None:
    """The exclusive range bound for stream entries past ``cursor`` (older ones when
    ``reverse``), or None when none can lie there: Redis refuses ``(0-0`` as the top of a
    reverse range, and the greatest id as the bottom of a forward one."""
    end = (0, 0) if reverse else (U64_MAX, U64_MAX)
    return None if parse_stream_id(cursor) == end else f"({cursor}"
