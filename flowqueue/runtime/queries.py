"""Queries across runs and flows: by flow, status, start time, step, error text and state.

A query walks the run indexes newest first (every flow's merged by start time, as
``list_runs`` does) and keeps the runs that match. What the index knows (status, start
time) is checked first; a step, an error or a state key needs the run's log, reduced, so
those are read only for the runs that pass the rest. One call looks at no more than
``scan`` runs: a page may then hold fewer than ``limit`` runs, and ``next_before`` still
says where to go on, so paging through every page finds every match once, in order.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_core import from_json

from flowqueue.backend.store import RunSummary
from flowqueue.errors import NonJsonPayload
from flowqueue.model.reducer import RunState, RunStatus, StepStatus, reduce
from flowqueue.model.validation import MAX_JSON_DEPTH, check_json
from flowqueue.runtime.client import list_runs, read_events

PAGE = 200  # runs read from the indexes at a time
SCAN = 5_000  # runs one call looks at, at most


class RunQuery(BaseModel):
    """What a run must be to match; every field given must hold."""

    flows: list[str] = Field(default=[], description="Its flow is one of these (all: empty).")
    status: RunStatus | None = None
    since: datetime | None = Field(default=None, description="Started at or after this.")
    until: datetime | None = Field(default=None, description="Started before this.")
    step: str | None = Field(default=None, description="This step of it has started.")
    error: str | None = Field(
        default=None,
        description="It failed, and this text is in its error's type or message (any case).",
    )
    state_key: str | None = Field(default=None, description="Its state holds this key...")
    state_value: Any = Field(default=None, description="...with this value (JSON), if given.")
    has_state_value: bool = False  # state_value was given (None is a value: null)
    limit: int = Field(default=50, ge=1, le=1000)
    before: str | None = Field(default=None, description="Go on after this run id.")

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, moment: datetime | None) -> datetime | None:
        """A time without a zone is UTC."""
        return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment

    @model_validator(mode="after")
    def _coherent(self) -> RunQuery:
        if self.has_state_value and self.state_key is None:
            raise ValueError("a state value needs the key it is the value of (state_key)")
        return self

    @classmethod
    def state_filter(cls, text: str) -> dict[str, Any]:
        """``KEY`` or ``KEY=VALUE`` (the first ``=`` splits; VALUE is JSON, or else the
        text itself as a string) as RunQuery's fields."""
        key, sep, raw = text.partition("=")
        if not sep:
            return {"state_key": key}
        try:
            value = from_json(raw)
        except ValueError as exc:
            if "recursion" in str(exc):  # JSON, but deeper than any state can hold
                deeper = f"the state value nests deeper than {MAX_JSON_DEPTH} levels"
                raise NonJsonPayload(deeper) from None
            value = raw  # gold: the string "gold", as "\"gold\"" is
        check_json(value, "the state value")  # NonJsonPayload: deeper than a state holds
        return {"state_key": key, "state_value": value, "has_state_value": True}

    @property
    def reads_log(self) -> bool:
        return self.step is not None or self.error is not None or self.state_key is not None


class RunQueryPage(BaseModel):
    runs: list[RunSummary]
    next_before: str | None = Field(
        default=None, description="Pass as before= for the next page; null: nothing older."
    )
    scanned: int = Field(description="How many runs this page looked at.")


def query_runs(query: RunQuery, *, app: Any | None = None, scan: int = SCAN) -> RunQueryPage:
    """The runs matching ``query``, newest first (see the module's doc for paging)."""
    flows = query.flows or None  # None: every flow
    if query.since and query.until and query.since >= query.until:
        return RunQueryPage(runs=[], next_before=None, scanned=0)  # an empty range
    found: list[RunSummary] = []
    scanned, cursor = 0, query.before
    while scanned < scan:
        page = list_runs(flows, limit=PAGE, before=cursor, app=app)
        if not page:
            return RunQueryPage(runs=found, next_before=None, scanned=scanned)
        for summary in page:
            scanned += 1
            cursor = summary.run_id
            if query.since and summary.started_at and summary.started_at < query.since:
                return RunQueryPage(runs=found, next_before=None, scanned=scanned)  # all older
            if _matches(query, summary, app):
                found.append(summary)
                if len(found) == query.limit:
                    return RunQueryPage(runs=found, next_before=cursor, scanned=scanned)
            if scanned == scan:
                break
    return RunQueryPage(runs=found, next_before=cursor, scanned=scanned)


def _matches(query: RunQuery, summary: RunSummary, app: Any | None) -> bool:
    if query.status is not None and summary.status != query.status:
        return False
    if query.until and summary.started_at and summary.started_at >= query.until:
        return False
    if query.error is not None and summary.status != RunStatus.FAILED:
        return False
    if not query.reads_log:
        return True
    events = read_events(summary.run_id, app=app)
    return bool(events) and _state_matches(query, reduce(events))


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON (1, 1.0 and true differ; keys in any order)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _state_matches(query: RunQuery, state: RunState) -> bool:
    if query.step is not None:
        step = state.steps.get(query.step)
        if step is None or step.status == StepStatus.QUEUED:
            return False
    if query.error is not None:
        error = state.error
        text = "" if error is None else f"{error.type}: {error.message}"
        if query.error.casefold() not in text.casefold():
            return False
    if query.state_key is not None:
        if query.state_key not in state.state:
            return False
        if query.has_state_value and not _same(state.state[query.state_key], query.state_value):
            return False
    return True
