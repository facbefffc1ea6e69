"""The store's synchronous client: ``EVALSHA`` on a connection pinned to the calling
thread.

A worker makes one or two script calls per step, and redis-py 8 spends about as long on
each call's wrappers (a pool checkout and its check for unread data, the retry and event
hooks, metrics) as on sending and reading it: a pinned call takes about half a redis-py
``EVALSHA``'s caller CPU (``bench/calls.py``). A thread keeps one connection for its
script calls; it goes back to the pool when the thread ends. A script call that meets
connection trouble goes through redis-py's own call, with its reconnects and retries, as
every call did before. A fork never uses its parent's connection (each is pinned to a
process id).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

import hiredis
import redis
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError, TimeoutError


class _Pin:
    """A thread's connection; released to the pool when the thread's locals go."""

    def __init__(self, pool: Any) -> None:
        self.pid = os.getpid()
        self.connection: AbstractConnection = pool.get_connection()
        weakref.finalize(self, pool.release, self.connection)


class PinnedScriptsRedis(redis.Redis):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pins = threading.local()

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        pin: _Pin | None = getattr(self._pins, "pin", None)
        if pin is None or pin.pid != os.getpid():
            pin = self._pins.pin = _Pin(self.connection_pool)
        connection = pin.connection
        try:
            packed = _packed(connection, sha, numkeys, keys_and_args)
            connection.send_packed_command(packed)  # type: ignore[no-untyped-call]
            return connection.read_response()
        except (ConnectionError, TimeoutError):
            # redis-py dropped the socket; the next call reconnects. This one retries as
            # any redis-py call does (a script that ran before the reply was lost runs
            # again, as then: each decides once).
            return super().evalsha(sha, numkeys, *keys_and_args)


def _packed(
    connection: AbstractConnection, sha: str, numkeys: int, keys_and_args: tuple[Any, ...]
) -> list[bytes]:
    """The command in RESP, packed by hiredis in one call (redis-py first rebuilds the
    argument tuple in Python); redis-py's packer for what hiredis does not take."""
    command = ("EVALSHA", sha, numkeys, *keys_and_args)
    try:
        return [hiredis.pack_command(command)]
    except (TypeError, redis.DataError):  # e.g. a memoryview
        chunks: list[bytes] = connection.pack_command(*command)  # type: ignore[no-untyped-call]
        return chunks
