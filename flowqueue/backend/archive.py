"""The archive interface: where ended runs' logs go before their retention ends in Redis.

The implementation is ``postgres/archive.py``. The Redis store reads a run from the
archive once its keys are gone (``redis/store.py``), and merges archived runs into run
lists; the worker's archiver (``runtime/_archiver.py``) writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from flowqueue.backend.store import RunSummary, start_order
from flowqueue.model.events import Event

# One record of a run's log as Redis holds it: its id, and its body whole (the run id
# and flow put back), or None for a record with no body.
Record = tuple[str, bytes | None]


@dataclass(frozen=True, slots=True)
class ArchivedRun:
    """An ended run as the archiver copies it: its summary and its log's records, undecoded
    (the archive keeps them as they were; a read decodes them as a read from Redis does).
    A dataclass: tens of thousands of records a batch, never sent between processes."""

    summary: RunSummary
    records: list[Record]


class RunCursor(BaseModel):
    """Where a page of a run list goes on from: the runs older than this one (the run
    indexes' order: start time in ms, then run id)."""

    model_config = ConfigDict(frozen=True)

    started_ms: int
    run_id: str


class Archive(Protocol):
    """Blocking API (the async store calls it in a thread); every method is safe to call
    from several threads at once."""

    def save(self, runs: Sequence[ArchivedRun]) -> None:
        """Write ``runs`` in one transaction; a run saved before is replaced by this copy
        (its log only grows: events already there are kept)."""

    def read(self, run_id: str, after: str | None = None, limit: int | None = None) -> list[Event]:
        """Events after ``after`` (exclusive), oldest first; [] for a run not archived."""

    def read_reverse(
        self, run_id: str, before: str | None = None, limit: int | None = None
    ) -> list[Event]:
        """Events before ``before`` (exclusive), newest first."""

    def count(self, run_id: str) -> int:
        """Number of events in the run's archived log (0: not archived)."""

    def started_ms(self, run_id: str) -> int | None:
        """When an archived run started (None: not archived), for paging past it."""

    def list_runs(self, flow: str, limit: int, before: RunCursor | None = None) -> list[RunSummary]:
        """A flow's archived runs, newest first, older than ``before``."""

    def close(self) -> None: ...


def merge_runs(live: list[RunSummary], archived: list[RunSummary], limit: int) -> list[RunSummary]:
    """One page of a run list from Redis's page and the archive's (both newest first,
    from the same cursor): a run in both reads as Redis has it."""
    seen = {run.run_id for run in live}
    runs = live + [run for run in archived if run.run_id not in seen]
    return sorted(runs, key=start_order, reverse=True)[:limit]
