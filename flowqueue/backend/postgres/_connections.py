"""A process's connections to the archive: made on demand, a few kept idle between calls.

Not psycopg_pool: its pool connects in the background and, while PostgreSQL is away,
retries until its timeout with a warning per try; a read of an archived run must fail
within one connect timeout, in one line, and the archiver backs off on its own. Nothing
is shared across a fork: a child drops what its parent kept.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

Connection = psycopg.Connection[tuple[Any, ...]]
CHECK_AFTER_S = 5.0  # an idle connection older than this is checked before it is used


class IdleConnections:
    def __init__(
        self, url: str, *, keep: int, connect_timeout: int, first: Callable[[Connection], Any]
    ) -> None:
        self.url = url
        self._keep = keep
        self._connect_timeout = connect_timeout
        self._first = first  # called on the process's first connection (migrations)
        self._idle: list[tuple[float, Connection]] = []
        self._lock = threading.Lock()
        self._first_lock = threading.Lock()
        self._pid = -1  # the process whose connections _idle holds

    def _take(self) -> Connection:
        if self._pid != os.getpid():  # this process's first: the others wait for it
            with self._first_lock:
                if self._pid != os.getpid():
                    conn = self._connect()
                    try:
                        self._first(conn)
                    except BaseException:
                        conn.close()
                        raise
                    with self._lock:
                        self._idle, self._pid = [], os.getpid()
                    return conn
        with self._lock:
            while self._idle:
                since, conn = self._idle.pop()
                if time.monotonic() - since < CHECK_AFTER_S or _alive(conn):
                    return conn
        return self._connect()

    def _connect(self) -> Connection:
        return psycopg.connect(self.url, autocommit=True, connect_timeout=self._connect_timeout)

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        conn = self._take()
        try:
            yield conn
        finally:
            if conn.closed or conn.broken or conn.info.transaction_status != 0:
                conn.close()  # 0: idle, nothing open
            else:
                with self._lock:
                    if len(self._idle) < self._keep and self._pid == os.getpid():
                        self._idle.append((time.monotonic(), conn))
                        conn = None  # type: ignore[assignment]
                if conn is not None:
                    conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            mine = self._pid == os.getpid()
            self._pid = -1
        for _, conn in idle if mine else ():
            conn.close()


def _alive(conn: Connection) -> bool:
    try:
        conn.execute("")
    except psycopg.Error:
        conn.close()
        return False
    return True
