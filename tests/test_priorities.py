"""Deliveries that runs in progress are owed go ahead of new runs' first steps, in a real
Redis broker's queue (no worker consumes here, so the messages stay where kombu put
them)."""

from __future__ import annotations

import json
import uuid

import redis

from flowqueue import create_app, start_flow
from flowqueue.model.timers import TimerSpec
from flowqueue.runtime._priorities import step_priorities
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.settings import Settings
from tests.worker_harness import own_database


def test_defaults_follow_the_broker():
    settings = Settings()
    on_redis = step_priorities("redis://127.0.0.1:6379/0", settings)
    assert (on_redis.in_flight, on_redis.new_run) == (0, 3)  # kombu on Redis: 0 first
    on_amqp = step_priorities("amqp://guest@localhost//", settings)
    assert (on_amqp.in_flight, on_amqp.new_run) == (None, None)  # a queue without priorities
    with_max = step_priorities("amqp://guest@localhost//", settings, max_priority=10)
    assert (with_max.in_flight, with_max.new_run) == (9, None)  # RabbitMQ: higher goes first
    assert step_priorities("pyamqp://h//", settings, max_priority=5).in_flight == 4
    assert step_priorities("sqs://", settings, max_priority=10).in_flight is None
    chosen = step_priorities("amqp://", Settings(new_run_priority=1, in_flight_priority=9))
    assert (chosen.in_flight, chosen.new_run) == (9, 1)


def test_a_due_sleep_is_queued_ahead_of_new_runs(redis_server):
    url = own_database(redis_server.url)
    settings = Settings(redis_url=url, key_prefix=f"p{uuid.uuid4().hex[:8]}", workers="tests.flows")
    app = create_app(settings)
    app.conf.task_default_queue = queue = f"q{uuid.uuid4().hex[:8]}"
    fq = flowqueue_of(app)
    broker = redis.Redis.from_url(url)
    try:
        new_runs = [start_flow("nap", {"seconds": 1}, app=app) for _ in range(3)]
        wake = TimerSpec(kind="wake", run_id=new_runs[0], flow="nap", step="nap", key="nap#2")
        fq.orchestrator.fire(wake.member())  # what the pump does when a sleep falls due

        def runs_in(key: str) -> list[str]:
            return [json.loads(m)["headers"]["id"].split(":")[0] for m in broker.lrange(key, 0, -1)]

        assert runs_in(queue) == [new_runs[0]]  # BRPOP serves this list first
        assert sorted(runs_in(f"{queue}\x06\x163")) == sorted(new_runs)
    finally:
        broker.flushdb()
        broker.close()
        fq.store.close()


def test_an_empty_variable_means_the_default(monkeypatch):
    monkeypatch.setenv("FLOWQUEUE_NEW_RUN_PRIORITY", "")
    monkeypatch.setenv("FLOWQUEUE_IN_FLIGHT_PRIORITY", "7")
    assert (Settings().new_run_priority, Settings().in_flight_priority) == (None, 7)
