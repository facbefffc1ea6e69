"""A PostgreSQL database of the test session's own, on the machine's PostgreSQL (created
and dropped here; never the machine's own databases). The tests that need it are skipped,
loudly, where no PostgreSQL answers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

# The server the suite uses: the machine's (trust auth on 127.0.0.1), or another one.
ADMIN_URL = os.environ.get(
    "FLOWQUEUE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.encode())


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[Callable[[], str]]:
    """Makes databases: call it for a new one's URL; each is dropped at the session's end."""
    try:
        _admin("SELECT 1")
    except Exception as exc:
        pytest.skip(f"POSTGRES ARCHIVE TESTS SKIPPED: no PostgreSQL at {ADMIN_URL}: {exc}")
    made: list[str] = []

    def make() -> str:
        name = f"flowqueue_test_{uuid.uuid4().hex[:12]}"
        _admin(f'CREATE DATABASE "{name}"')
        made.append(name)
        return f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"

    yield make
    for name in made:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
