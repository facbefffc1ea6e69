"""A real 3-master Redis Cluster of the test session's own: three ``redis-server
--cluster-enabled yes`` on free ports, slots split in three and the nodes introduced
(``CLUSTER ADDSLOTS`` / ``CLUSTER MEET``, what ``redis-cli --cluster create`` sends)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from flowqueue.backend.redis.embedded import find_redis_server, free_port

SLOTS = 16384
HIGHEST_PORT = 65535 - 10000  # a node's bus port is its port + 10000


def _port() -> int:
    while (port := free_port()) > HIGHEST_PORT or port + 10000 > 65535:
        pass
    return port


def start_cluster(masters: int = 3) -> Iterator[list[str]]:
    """Yields the nodes' URLs once every slot is served; stops them after."""
    folder = Path(tempfile.mkdtemp(prefix="fq-cluster-"))
    ports = [_port() for _ in range(masters)]
    processes = []
    try:
        for port in ports:
            (folder / str(port)).mkdir()
            processes.append(
                subprocess.Popen(
                    [find_redis_server(), "--port", str(port), "--bind", "127.0.0.1",
                     "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--dir", str(folder / str(port)), "--save", "", "--appendonly", "no"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )  # fmt: skip
        clients = [redis.Redis(port=port) for port in ports]
        for client in clients:
            _wait(lambda c=client: bool(c.ping()), "a node to start")
        share = SLOTS // masters
        for i, client in enumerate(clients):
            last = SLOTS - 1 if i == masters - 1 else (i + 1) * share - 1
            client.execute_command("CLUSTER ADDSLOTS", *range(i * share, last + 1))
        for port in ports[1:]:
            clients[0].execute_command("CLUSTER MEET", "127.0.0.1", port)
        for client in clients:
            _wait(lambda c=client: c.cluster("info")["cluster_state"] == "ok", "the cluster")
        yield [f"redis://127.0.0.1:{port}/0" for port in ports]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


def _wait(ready: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)
