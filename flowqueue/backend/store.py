"""The event store interfaces, sync and async, and the models they return.

The implementation is ``redis/store.py`` (``memory://`` runs it on a ``redis-server`` of
the app's own).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict, computed_field

from flowqueue.model.events import Event, NewEvent
from flowqueue.model.ids import ms_to_datetime
from flowqueue.model.statuses import DURATION_BUCKETS_MS as DURATION_BUCKETS_MS
from flowqueue.model.statuses import duration_quantile


class RunSummary(BaseModel):
    """One line of a flow's run list (bookkeeping kept by the store, not the reducer)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    flow: str
    status: str
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @classmethod
    def from_fields(
        cls, run_id: str, flow: str, status: str, started_ms: str, ended_ms: str
    ) -> RunSummary:
        return cls(
            run_id=run_id,
            flow=flow,
            status=status or "unknown",
            started_at=ms_to_datetime(int(started_ms)) if started_ms else None,
            ended_at=ms_to_datetime(int(ended_ms)) if ended_ms else None,
        )


def start_order(run: RunSummary) -> tuple[datetime, str]:
    """The order of the run indexes: start time, then run id (run lists are newest first)."""
    return (run.started_at or datetime.min.replace(tzinfo=UTC), run.run_id)


class FlowStats(BaseModel):
    """A flow's live counters, kept by the store with every append."""

    model_config = ConfigDict(frozen=True)

    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    awaiting: int = 0  # steps awaiting a time, an event or a trigger, in runs not ended
    events: int = 0  # events appended to the flow's runs
    # Finished step attempts by duration bucket (upper bound in ms, or "inf"; not
    # cumulative) and the sum of their durations in ms.
    step_ms_buckets: dict[str, int] = {}
    step_ms_sum: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def step_ms_p50(self) -> float | None:
        """Median step attempt duration in ms, from the histogram (None: none finished)."""
        return duration_quantile(self.step_ms_buckets, 0.5)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def step_ms_p95(self) -> float | None:
        """95th percentile step attempt duration in ms, from the histogram."""
        return duration_quantile(self.step_ms_buckets, 0.95)


class ExpiredRun(BaseModel):
    """An ended run whose retention has passed: Redis deletes its keys then, and a sweep
    drops it from its flow's index, its status's counter and the lifecycle feed."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    flow: str
    status: str
    expired_at: datetime


class FeedEntry(BaseModel):
    """One lifecycle event in the cross-run feed; ``id`` is its position in the feed
    (increasing across all runs), ``event.id`` its id in its run's log."""

    model_config = ConfigDict(frozen=True)

    id: str
    event: Event


class EventStore(Protocol):
    """Blocking API, for Celery workers and scripts."""

    def append(self, event: NewEvent) -> Event:
        """Append one event atomically (log, live channel, bookkeeping); return it stored."""

    def append_many(self, events: Sequence[NewEvent]) -> list[Event]:
        """Append events of one run atomically, in order, in one round trip."""

    def read(self, run_id: str, after: str | None = None, limit: int | None = None) -> list[Event]:
        """Events after ``after`` (exclusive), oldest first, paging through the whole log."""

    def read_reverse(
        self, run_id: str, before: str | None = None, limit: int | None = None
    ) -> list[Event]:
        """Events before ``before`` (exclusive), newest first."""

    def count(self, run_id: str) -> int:
        """Number of events in the run's log."""

    def list_runs(self, flow: str, limit: int = 50, before: str | None = None) -> list[RunSummary]:
        """A flow's runs, newest first; pass the last run id as ``before`` for the next page."""

    def subscribe(self, run_id: str, after: str | None = None) -> Iterator[Event]:
        """Every event after ``after``, in order, exactly once: backfill, then live."""

    def read_feed(self, after: str | None = None, limit: int | None = None) -> list[FeedEntry]:
        """Lifecycle events of every run after feed position ``after``, oldest first."""

    def export_position(self, exporter: str) -> str | None:
        """The feed position exporter ``exporter`` has handed every event on up to."""

    def save_export_position(self, exporter: str, position: str) -> None:
        """Keep ``position`` as exporter ``exporter``'s (one process exports per name)."""

    def flow_stats(self, flow: str) -> FlowStats:
        """Runs of ``flow`` by status, and its steps awaiting."""

    def sweep(self, *, dry_run: bool = False) -> list[ExpiredRun]:
        """Drop every expired run from its flow's index, counters and the feed now (each
        worker does it every ``retention_sweep_seconds``; listing runs and reading counters
        drop a flow's first); with ``dry_run``, only say which would go."""

    @property
    def aio(self) -> AsyncEventStore:
        """The async API over the same store."""

    def close(self) -> None: ...


class AsyncEventStore(Protocol):
    """asyncio API, for the API server; same semantics as ``EventStore``."""

    async def append(self, event: NewEvent) -> Event: ...

    async def append_many(self, events: Sequence[NewEvent]) -> list[Event]: ...

    async def read(
        self, run_id: str, after: str | None = None, limit: int | None = None
    ) -> list[Event]: ...

    async def read_reverse(
        self, run_id: str, before: str | None = None, limit: int | None = None
    ) -> list[Event]: ...

    async def count(self, run_id: str) -> int: ...

    async def list_runs(
        self, flow: str, limit: int = 50, before: str | None = None
    ) -> list[RunSummary]: ...

    def subscribe(self, run_id: str, after: str | None = None) -> AsyncGenerator[Event, None]: ...

    async def read_feed(
        self, after: str | None = None, limit: int | None = None
    ) -> list[FeedEntry]: ...

    async def flow_stats(self, flow: str) -> FlowStats: ...

    def subscribe_feed(self, after: str | None = None) -> AsyncGenerator[FeedEntry, None]:
        """The feed after ``after``, in order, exactly once: backfill, then live. The
        feed is capped (``feed_maxlen``): a cursor older than what it keeps resumes at
        its oldest entry."""

    async def aclose(self) -> None: ...
