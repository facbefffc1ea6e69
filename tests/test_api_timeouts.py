"""Stalled clients are cut: a request head must arrive within
FLOWQUEUE_API_HEADER_TIMEOUT_SECONDS of the connection opening (or of the previous
response), a JSON body within FLOWQUEUE_API_BODY_TIMEOUT_SECONDS; idle SSE streams are
not affected. Raw sockets against a real ``flowqueue api`` process, no worker.

Each test first shows the connection is still open shortly after the stall (a timer
closes it, not an instant refusal), then that it is closed well within a generous bound.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from flowqueue.model.events import NewEvent
from flowqueue.model.ids import new_run_id
from tests.api_harness import ApiProcess
from tests.worker_harness import Cluster

pytestmark = pytest.mark.e2e
TIMEOUT = 2.0  # both bounds, in the API process below
CLOSED_WITHIN = 8.0  # generous: the timers fire at 2 s
HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"  # a head missing its final CRLF


@pytest.fixture(scope="module")
def cluster(redis_server, tmp_path_factory) -> Iterator[Cluster]:
    group = Cluster(redis_server.url, tmp_path_factory.mktemp("timeouts"))
    yield group
    group.close()


@pytest.fixture(scope="module")
def api(cluster) -> Iterator[ApiProcess]:
    process = ApiProcess(
        cluster.env,
        cluster.log_dir / "api.log",
        FLOWQUEUE_API_HEADER_TIMEOUT_SECONDS=str(TIMEOUT),
        FLOWQUEUE_API_BODY_TIMEOUT_SECONDS=str(TIMEOUT),
    )
    yield process
    process.stop()


def connect(api: ApiProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", api.port), timeout=10)


@pytest.fixture
def sock(api) -> Iterator[socket.socket]:
    with connect(api) as connection:
        yield connection


def read(sock: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """What the server sends within ``seconds``, and whether it closed the connection."""
    data, end = b"", time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def read_until(sock: socket.socket, needle: bytes, seconds: float) -> bytes:
    data, end = b"", time.monotonic() + seconds
    while needle not in data:
        chunk, closed = read(sock, min(0.5, max(0.0, end - time.monotonic())))
        data += chunk
        assert not closed, f"closed before {needle!r}: {data!r}"
        assert time.monotonic() < end, f"no {needle!r} within {seconds} s: {data!r}"
    return data


def status(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def problem_of(response: bytes) -> dict:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), head
    return json.loads(body)


def test_a_stalled_request_head_is_closed_with_408(api, sock):
    opened = time.monotonic()
    sock.sendall(b"GET /healthz HT")
    assert read(sock, 0.3) == (b"", False)  # still open: nothing cuts it at once
    data, closed = read(sock, CLOSED_WITHIN)
    elapsed = time.monotonic() - opened
    assert closed, f"still open after {elapsed:.1f} s"
    assert elapsed > TIMEOUT / 2  # the header timer, not an instant refusal
    assert status(data) == 408
    assert "FLOWQUEUE_API_HEADER_TIMEOUT_SECONDS" in problem_of(data)["detail"]


def test_a_trickled_head_is_closed_too(api, sock):
    """A byte now and then does not restart the bound (uvicorn's own keep-alive timer
    stops at the first byte, so this connection would stay open forever)."""
    opened = time.monotonic()
    head = HEAD + b"X-Pad: " + b"a" * 200  # 60 s at 4 bytes/s
    data, closed = b"", False
    for byte in head:
        try:
            sock.sendall(bytes([byte]))
        except OSError:  # closed under us
            closed = True
            break
        chunk, closed = read(sock, 0.25)
        data += chunk
        if closed or time.monotonic() - opened > CLOSED_WITHIN:
            break
    assert closed, f"still open after {time.monotonic() - opened:.1f} s"
    assert status(data) == 408


def test_a_stalled_second_request_on_a_kept_alive_connection_is_closed(api, sock):
    sock.sendall(HEAD + b"\r\n")
    response = read_until(sock, b'"ok"', 10)
    assert status(response) == 200
    sock.sendall(b"GET /healthz HT")  # the next head stalls
    assert read(sock, 0.3) == (b"", False)
    data, closed = read(sock, CLOSED_WITHIN)
    assert closed
    assert status(data) == 408


def test_fifty_half_sent_heads_and_silent_connections_are_all_closed(api):
    half_sent = [connect(api) for _ in range(50)]
    silent = [connect(api) for _ in range(10)]  # nothing asked: closed without an answer
    for sock in half_sent:
        sock.sendall(HEAD)
    deadline = time.monotonic() + 15
    try:
        for index, sock in enumerate(half_sent + silent):
            data, closed = read(sock, max(0.1, deadline - time.monotonic()))
            assert closed, f"connection {index} still open"
            assert status(data) == 408 if index < len(half_sent) else data == b""
    finally:
        for sock in half_sent + silent:
            sock.close()
    with api.client() as client:  # and the server serves on
        assert client.get("/healthz").status_code == 200


def test_a_stalled_body_gets_408_and_writes_nothing(api, sock):
    head = (
        b"POST /api/_flows/nap/start HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    sock.sendall(head + b'{"seconds"')  # 10 of 100 bytes
    assert read(sock, 0.3) == (b"", False)
    data, closed = read(sock, CLOSED_WITHIN)
    assert closed
    assert status(data) == 408
    assert "FLOWQUEUE_API_BODY_TIMEOUT_SECONDS" in problem_of(data)["detail"]
    with api.client() as client:
        assert client.get("/api/_flows/nap/runs").json()["runs"] == []


def test_a_slow_but_steady_request_under_the_bounds_works(api, sock):
    body = b'{"seconds": 0}'
    head = (
        b"POST /api/_flows/nap/start HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
    )
    for part in [head[i : i + 12] for i in range(0, len(head), 12)]:  # ~0.5 s for the head
        sock.sendall(part)
        time.sleep(0.05)
    for part in [body[i : i + 3] for i in range(0, len(body), 3)]:  # ~0.25 s for the body
        sock.sendall(part)
        time.sleep(0.05)
    data, closed = read(sock, 10)
    assert closed  # Connection: close, after the answer
    assert status(data) == 201, data
    run_id = json.loads(data.partition(b"\r\n\r\n")[2])["run_id"]
    with api.client() as client:
        assert [r["run_id"] for r in client.get("/api/_flows/nap/runs").json()["runs"]] == [run_id]


def test_an_idle_sse_stream_is_not_cut(api, cluster, sock):
    run_id = new_run_id()
    base = {"run_id": run_id, "flow": "nap"}
    cluster.fq.store.append(NewEvent(kind="flow.started", data={"input": {}}, **base))
    path = f"/api/_flows/nap/runs/{run_id}/stream?keep_open=true"
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert status(read_until(sock, b"flow.started", 10)) == 200
    # Silent (the SSE heartbeat is 15 s) for three times both bounds: still open.
    assert read(sock, 3 * TIMEOUT) == (b"", False)
    cluster.fq.store.append(NewEvent(kind="log", step="nap", data={"msg": "late"}, **base))
    assert b"late" in read_until(sock, b"late", 10)


def test_an_endless_request_head_is_refused_with_431_before_the_timeout(api, sock):
    """httptools buffers headers without bound; the server stops at 64 KiB."""
    opened = time.monotonic()
    # 66 KiB of headers in one send, never ending the head (and nothing after it, so
    # the server has read everything when it closes: no reset swallows its answer).
    filler = b"".join(b"X-Filler: " + b"a" * 1012 + b"\r\n" for _ in range(66))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + filler)
    data, closed = read(sock, CLOSED_WITHIN)
    assert closed
    assert time.monotonic() - opened < TIMEOUT  # the size bound, not the timer
    assert status(data) == 431
    assert "headers" in problem_of(data)["detail"]


def test_a_large_head_under_the_bound_is_served(api, sock):
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(40))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + filler + b"\r\n")
    assert status(read_until(sock, b"\r\n\r\n", CLOSED_WITHIN)) == 200
