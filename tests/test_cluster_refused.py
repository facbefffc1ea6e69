"""Until flowqueue shards its cross-run keys, a Redis Cluster node as FLOWQUEUE_REDIS_URL
is refused up front, with what to do, by each way in: the CLI, the worker and the API
(before, kombu died on a bare MOVED and the CLI printed CROSSSLOT). On a real 3-master
cluster the suite starts (tests/redis_cluster.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowqueue.backend.redis.topology import check_standalone
from flowqueue.errors import ConfigurationError
from tests.redis_cluster import start_cluster

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SAYS = "is a Redis Cluster node, and flowqueue needs one Redis"


@pytest.fixture(scope="module")
def node() -> Iterator[str]:
    cluster = start_cluster()
    yield next(cluster)[0]
    cluster.close()


def run(node: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["FLOWQUEUE_REDIS_URL"] = node
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_cli_says_what_to_do(node):
    for command in (("start", "example-flow"), ("runs",), ("show", "no-such-run")):
        done = run(node, str(BIN / "flowqueue"), *command)
        assert done.returncode == 1, done
        assert SAYS in done.stderr
        assert "Point FLOWQUEUE_REDIS_URL at a standalone Redis." in done.stderr
        assert "Traceback" not in done.stderr


def test_the_worker_stops_and_says_why(node):
    done = run(node, str(BIN / "celery"), "-A", "flowqueue", "worker", "-c", "1")
    assert done.returncode == 1
    assert SAYS in done.stdout + done.stderr
    assert "MovedError" not in done.stdout + done.stderr


def test_the_api_does_not_start(node):
    done = run(node, str(BIN / "flowqueue"), "api", "--port", "0")
    assert done.returncode == 1
    assert SAYS in done.stderr


def test_a_standalone_redis_or_none_at_all_passes(node, redis_server):
    check_standalone(redis_server.url)
    check_standalone("redis://127.0.0.1:1/0", timeout=0.5)  # nothing answers: not checked here
    with pytest.raises(ConfigurationError, match=SAYS):
        check_standalone(node)
