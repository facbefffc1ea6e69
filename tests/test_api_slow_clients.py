"""200 SSE clients that never read: the API process's memory stays within a stated
bound, a fast client meanwhile gets every event, and the stuck clients are disconnected.

The bound: per client at most FLOWQUEUE_SSE_CLIENT_BUFFER queued frames, one backfill
page and one live buffer of as many events, and uvicorn's 64 KiB write buffer: with a
buffer of 200 events of ~400 bytes, under 1 MiB per client however many events the run
has (buffering all of them would take ~4 MB per client here). The test allows 200 MiB for
200 clients; measured on 2026-11-23: +137 MiB with 10,000 events, +139 MiB with 20,000.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from flowqueue.model.events import NewEvent
from tests.api_harness import ApiProcess
from tests.test_api import sse_events

pytestmark = pytest.mark.e2e
SLOW_CLIENTS = 200
EVENTS = 10_000
GROWTH_BOUND_MIB = 200


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def test_stuck_clients_do_not_grow_server_memory(cluster, tmp_path):
    api = ApiProcess(
        cluster.env,
        tmp_path / "api.log",
        FLOWQUEUE_SSE_CLIENT_BUFFER="200",
        FLOWQUEUE_SSE_SEND_TIMEOUT_SECONDS="3",
    )
    run_id = "0190a4e2-5100-7000-8000-000000000000"
    base = {"run_id": run_id, "flow": "nap"}
    store = cluster.fq.store
    store.append(NewEvent(kind="flow.started", data={"input": {}}, **base))
    path = f"/api/_flows/nap/runs/{run_id}/stream"
    sockets = []
    try:
        before = rss_mib(api.process.pid)
        for _ in range(SLOW_CLIENTS):  # connect, ask for the stream, never read
            sock = socket.create_connection(("127.0.0.1", api.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            sockets.append(sock)
        fast: list = []
        reader = threading.Thread(target=lambda: fast.extend(sse_events(api, path)))
        reader.start()
        peak = before
        for start in range(0, EVENTS, 500):
            batch = [
                NewEvent(kind="log", step="nap", data={"msg": "x" * 200, "i": i}, **base)
                for i in range(start, start + 500)
            ]
            store.append_many(batch)
            peak = max(peak, rss_mib(api.process.pid))
        store.append(NewEvent(kind="flow.completed", **base))
        reader.join(120)
        for _ in range(20):  # the send timeout lets go of the stuck clients
            peak = max(peak, rss_mib(api.process.pid))
            time.sleep(0.25)
        assert len(fast) == EVENTS + 2  # the fast client got everything meanwhile
        assert [s.id for s in fast] == [e.id for e in store.read(run_id)]
        growth = peak - before
        print(f"API RSS {before:.1f} MiB, peak {peak:.1f} MiB (+{growth:.1f} MiB)")
        assert growth < GROWTH_BOUND_MIB
        with api.client() as client:
            metrics = client.get("/metrics").text
        disconnected = next(
            line for line in metrics.splitlines() if line.startswith("flowqueue_sse_slow")
        )
        assert int(disconnected.split()[-1]) > 0, metrics
    finally:
        for sock in sockets:
            sock.close()
        api.stop()
