"""``PostgresArchive``: ended runs' logs in PostgreSQL (``migrations/0001_archive.sql``).

Each record of a run's log is kept as Redis held it (its body's bytes, whole) and decoded
by the same function a read from Redis uses, so a run reads back from the archive
exactly as it read from Redis. Connections are made on demand and a few kept
(``_connections.py``); the schema is brought up to date on a process's first.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from flowqueue.backend.archive import ArchivedRun, RunCursor
from flowqueue.backend.postgres._connections import IdleConnections
from flowqueue.backend.postgres._migrations import migrate
from flowqueue.backend.store import RunSummary
from flowqueue.errors import ArchiveUnavailable
from flowqueue.model.events import Event, decode_event
from flowqueue.model.ids import parse_stream_id
from flowqueue.settings import redact_url

_SAVE_RUN = """
INSERT INTO flowqueue_runs (run_id, flow, status, started_ms, ended_ms, events)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (run_id) DO UPDATE SET status = EXCLUDED.status, ended_ms = EXCLUDED.ended_ms,
    events = EXCLUDED.events, archived_at = now()
"""
# Events arrive by COPY (several times faster than INSERTs) into a table of the session's
# own, emptied at each commit, then go on in one statement that skips those already kept.
_EVENTS_IN = """
CREATE TEMP TABLE IF NOT EXISTS flowqueue_events_in (LIKE flowqueue_events)
ON COMMIT DELETE ROWS
"""
_COPY_EVENTS = "COPY flowqueue_events_in (run_id, ms, seq, body) FROM STDIN"
_SAVE_EVENTS = """
INSERT INTO flowqueue_events SELECT * FROM flowqueue_events_in ON CONFLICT DO NOTHING
"""
_RUN_COLUMNS = "run_id, flow, status, started_ms::text, coalesce(ended_ms::text, '')"


def _ms(value: Any) -> int | None:
    return None if value is None else int(value.timestamp() * 1000 + 0.5)


class PostgresArchive:
    def __init__(self, url: str, *, keep: int = 4, connect_timeout: int = 5) -> None:
        self.url = url
        self._connections = IdleConnections(
            url, keep=keep, connect_timeout=connect_timeout, first=migrate
        )

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._connections.connection() as conn:
                yield conn
        except (psycopg.Error, OSError) as exc:
            raise ArchiveUnavailable(
                f"the archive at {redact_url(self.url)} did not answer ({_one_line(exc)}); "
                "check that PostgreSQL is up and FLOWQUEUE_ARCHIVE_URL is right."
            ) from exc

    def save(self, runs: Sequence[ArchivedRun]) -> None:
        if not runs:
            return
        run_rows, event_rows = [], []
        for run in runs:
            summary = run.summary
            started = _ms(summary.started_at)
            run_rows.append(
                (summary.run_id, summary.flow, summary.status, started or 0,
                 _ms(summary.ended_at), len(run.records))
            )  # fmt: skip
            for record_id, body in run.records:
                ms, seq = parse_stream_id(record_id)
                event_rows.append((summary.run_id, ms, seq, body))
        with self._connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(_SAVE_RUN, run_rows)
            cur.execute(_EVENTS_IN)
            with cur.copy(_COPY_EVENTS) as copy:
                for row in event_rows:
                    copy.write_row(row)
            cur.execute(_SAVE_EVENTS)

    def read(self, run_id: str, after: str | None = None, limit: int | None = None) -> list[Event]:
        return self._events(run_id, after, limit, reverse=False)

    def read_reverse(
        self, run_id: str, before: str | None = None, limit: int | None = None
    ) -> list[Event]:
        return self._events(run_id, before, limit, reverse=True)

    def _events(
        self, run_id: str, cursor: str | None, limit: int | None, *, reverse: bool
    ) -> list[Event]:
        if limit == 0:
            return []
        order, beyond = ("DESC", "<") if reverse else ("ASC", ">")
        where = "run_id = %s"
        params: list[Any] = [run_id]
        if cursor is not None:
            where += f" AND (ms, seq) {beyond} (%s, %s)"
            params += parse_stream_id(cursor)
        query = (
            f"SELECT ms::text || '-' || seq::text, body FROM flowqueue_events WHERE {where}"
            f" ORDER BY ms {order}, seq {order} LIMIT %s"
        )
        with self._connection() as conn:
            rows = conn.execute(query, (*params, limit)).fetchall()
        key = f"the archive's log of {run_id}"  # where a placeholder says it was
        return [decode_event(record_id, body, key, run_id) for record_id, body in rows]

    def count(self, run_id: str) -> int:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT events FROM flowqueue_runs WHERE run_id = %s", (run_id,)
            ).fetchone()
        return 0 if row is None else int(row[0])

    def started_ms(self, run_id: str) -> int | None:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT started_ms FROM flowqueue_runs WHERE run_id = %s", (run_id,)
            ).fetchone()
        return None if row is None else int(row[0])

    def list_runs(self, flow: str, limit: int, before: RunCursor | None = None) -> list[RunSummary]:
        where, params = "flow = %s", list[Any]([flow])
        if before is not None:
            where += " AND (started_ms, run_id) < (%s, %s)"
            params += [before.started_ms, before.run_id]
        query = (
            f"SELECT {_RUN_COLUMNS} FROM flowqueue_runs WHERE {where}"
            " ORDER BY started_ms DESC, run_id DESC LIMIT %s"
        )
        with self._connection() as conn:
            rows = conn.execute(query, (*params, limit)).fetchall()
        return [RunSummary.from_fields(*row) for row in rows]

    def close(self) -> None:
        self._connections.close()


def _one_line(exc: BaseException) -> str:
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
