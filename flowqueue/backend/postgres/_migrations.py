"""The archive's schema: the SQL files of ``migrations/`` (``<version>_<name>.sql``),
applied in order, each once. One transaction holds an advisory lock, so workers starting
together apply them once; ``flowqueue_schema`` keeps the versions applied."""

from __future__ import annotations

from importlib.resources import files as files_of

import psycopg

from flowqueue.errors import ConfigurationError

LOCK = 0x666C6F77  # pg_advisory_xact_lock's key: "flow"


def migrations() -> list[tuple[int, str]]:
    """Every migration as (version, SQL), oldest first."""
    folder = files_of("flowqueue.backend.postgres").joinpath("migrations")
    found = [
        (int(path.name.split("_", 1)[0]), path.read_text())
        for path in folder.iterdir()
        if path.name.endswith(".sql")
    ]
    return sorted(found)


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """Apply the migrations ``conn``'s database lacks; returns the schema version."""
    known = migrations()
    latest = known[-1][0]
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS flowqueue_schema ("
            " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = conn.execute("SELECT coalesce(max(version), 0) FROM flowqueue_schema").fetchone()
        current = int(row[0]) if row else 0  # type: ignore[call-overload]
        if current > latest:
            raise ConfigurationError(
                f"the archive's schema is at version {current}, newer than this flowqueue "
                f"knows ({latest}): upgrade flowqueue on this machine to the version the "
                "other workers run."
            )
        for version, sql in known:
            if version > current:
                conn.execute(sql.encode())  # several statements: no parameters
                conn.execute("INSERT INTO flowqueue_schema (version) VALUES (%s)", (version,))
    return latest
