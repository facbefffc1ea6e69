"""A moment on the command line: ``1h`` / ``30m`` / ``2d`` / ``90s`` ago, or ISO 8601
(a time without a zone is UTC)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

_AGO = re.compile(r"^(\d{1,9})([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class Moment(click.ParamType):  # type: ignore[type-arg]  # generic since click 8.3
    name = "moment"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        ago = _AGO.fullmatch(text)
        if ago:
            try:
                return datetime.now(UTC) - timedelta(**{_UNITS[ago[2]]: int(ago[1])})
            except OverflowError:
                self.fail(f"{text!r} is further back than any date", param, ctx)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is neither a time ago (1h, 30m, 2d, 90s, 1w) nor ISO 8601 "
                "(2026-12-02T10:00:00Z)",
                param,
                ctx,
            )
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


MOMENT = Moment()
