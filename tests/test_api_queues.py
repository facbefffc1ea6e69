"""``GET /api/_queues``: an empty queue reports 0 (on Redis it is an absent key, which a
passive declare calls missing); waiting messages are counted on every priority level;
null only when the broker says the queue does not exist."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import redis
from celery import Celery
from kombu import Queue

from flowqueue.api.routes_ops import _queue_depths
from tests.api_harness import ApiProcess
from tests.worker_harness import Cluster


@pytest.fixture(scope="module")
def idle(redis_server, tmp_path_factory) -> Iterator[tuple[Cluster, ApiProcess]]:
    """A cluster with no worker: whatever is sent stays queued."""
    cluster = Cluster(redis_server.url, tmp_path_factory.mktemp("queues"))
    api = ApiProcess(cluster.env, cluster.log_dir / "api.log")
    yield cluster, api
    api.stop()
    cluster.close()


def depths(api: ApiProcess) -> dict[str, int | None]:
    with api.client() as client:
        response = client.get("/api/_queues")
    assert response.status_code == 200, response.text
    return {queue["name"]: queue["depth"] for queue in response.json()}


@pytest.mark.e2e
def test_redis_queues_report_zero_when_empty_and_count_every_priority(idle):
    cluster, api = idle
    default = cluster.app.conf.task_default_queue
    broker = redis.Redis.from_url(cluster.url)
    assert broker.keys(f"{default}*") == []  # an empty queue is no key at all on Redis
    fresh = depths(api)
    assert default in fresh
    assert set(fresh.values()) == {0}

    with api.client() as client:  # new runs' entry steps: priority 3, a list of its own
        for _ in range(3):
            assert client.post("/api/_flows/nap/start", json={"seconds": 0}).status_code == 201
    cluster.app.send_task("tests.never_consumed", queue=default, priority=0)
    lists = broker.keys(f"{default}*")
    assert len(lists) == 2, lists  # the plain list and the priority-3 list
    assert depths(api)[default] == 4
    broker.close()


def test_declared_brokers_report_null_only_for_a_queue_that_does_not_exist():
    """The path for brokers with declared queues (AMQP), on kombu's in-memory transport:
    each probe is a passive declare on a fresh channel; "not found" is null."""
    tag = uuid.uuid4().hex[:8]
    full, empty, missing = (f"{name}-{tag}" for name in ("full", "empty", "missing"))
    app = Celery(broker="memory://", set_as_current=False)
    app.conf.task_default_queue = empty
    app.conf.task_queues = [Queue(full), Queue(empty), Queue(missing)]
    with app.connection_for_write() as connection:
        channel = connection.channel()
        channel.queue_declare(full)
        channel.queue_declare(empty)
    for _ in range(2):
        app.send_task("tests.never_consumed", queue=full)
    got = {
        queue.name: queue.depth
        for queue in _queue_depths(SimpleNamespace(fq=SimpleNamespace(app=app)))
    }
    assert got == {full: 2, empty: 0, missing: None}
