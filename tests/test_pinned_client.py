"""The store's client runs script calls on a connection pinned to each thread
(``flowqueue/backend/redis/_pinned.py``)."""

from __future__ import annotations

import gc
import os
import threading

import pytest
import redis

from flowqueue.backend.redis._pinned import PinnedScriptsRedis

SCRIPT = "return 1"


def used(client: PinnedScriptsRedis, sha: str, times: int = 1) -> set[str]:
    """The client addresses (as Redis sees them) of this thread's script calls."""
    seen = set()
    for _ in range(times):
        assert client.evalsha(sha, 0) == 1
        host, port = client._pins.pin.connection._sock.getsockname()[:2]
        seen.add(f"{host}:{port}")
    return seen


def test_each_thread_keeps_one_connection_and_gives_it_back_when_it_ends(redis_server):
    client = PinnedScriptsRedis.from_url(redis_server.url)
    sha = client.script_load(SCRIPT)
    mine = used(client, sha, 5)
    theirs: set[str] = set()
    other = threading.Thread(target=lambda: theirs.update(used(client, sha, 5)))
    other.start()
    other.join()
    assert len(mine) == 1
    assert len(theirs) == 1
    assert mine != theirs
    del other
    gc.collect()  # the ended thread's locals go: its connection is back in the pool
    assert len(client.connection_pool._in_use_connections) == 1  # this thread's
    client.close()


def test_a_dropped_connection_is_replaced_and_the_call_answers(redis_server, redis_client):
    client = PinnedScriptsRedis.from_url(redis_server.url)
    sha = client.script_load(SCRIPT)
    (first,) = used(client, sha)
    assert redis_client.client_kill(first)
    assert client.evalsha(sha, 0) == 1  # a dropped socket: redis-py's own call answers
    (second,) = used(client, sha, 3)  # and the pin reconnects, once
    assert second != first
    client.close()


def test_a_forked_child_never_uses_its_parents_connection(redis_server):
    client = PinnedScriptsRedis.from_url(redis_server.url)
    sha = client.script_load(SCRIPT)
    (parent,) = used(client, sha)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer with the address its call used
        try:
            os.write(write, used(client, sha).pop().encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    assert child != parent
    assert used(client, sha, 2) == {parent}  # the parent's is intact
    client.close()


def test_a_script_error_leaves_the_connection_in_step(redis_server):
    client = PinnedScriptsRedis.from_url(redis_server.url)
    failing = client.script_load("return redis.error_reply('boom')")
    sha = client.script_load(SCRIPT)
    (before,) = used(client, sha)
    with pytest.raises(redis.ResponseError, match="boom"):
        client.evalsha(failing, 0)
    with pytest.raises(redis.exceptions.NoScriptError):
        client.evalsha("0" * 40, 0)
    assert used(client, sha, 2) == {before}
    client.close()


def test_an_argument_hiredis_does_not_pack_is_packed_by_redis_py(redis_server):
    client = PinnedScriptsRedis.from_url(redis_server.url)
    sha = client.script_load("return ARGV[1] .. ARGV[2]")
    assert client.evalsha(sha, 0, memoryview(b"mem"), "ö") == "memö".encode()
    client.close()
