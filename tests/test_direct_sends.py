"""Direct sends (``flowqueue/runtime/_sender.py``): when the Celery broker is the store's
own Redis, a step's message is the exact writes kombu would make, made by the script that
decides the send (a run's start, an emit's claim); with any other broker Celery publishes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import redis

from flowqueue import start_flow
from flowqueue.backend.coordinator import Candidate
from flowqueue.errors import ConfigurationError
from flowqueue.model.events import EventKind
from flowqueue.runtime._orchestrator import run_event
from flowqueue.runtime._sender import same_redis

ORDER = {"order_id": "o-1", "items": [{"sku": "x", "quantity": 1}], "card": "4000123412341234"}
QUEUE = "celery\x06\x163"  # kombu's list for priority 3: a new run's entry steps


@pytest.mark.parametrize(
    ("broker", "store", "same"),
    [
        ("redis://127.0.0.1:6390/2", "redis://127.0.0.1:6390/2", True),
        ("redis://localhost", "redis://localhost:6379/0", True),
        ("redis://:pw@h:1/0", "redis://:pw@h:1/0", True),
        ("redis://127.0.0.1:6390/1", "redis://127.0.0.1:6390/2", False),  # another database
        ("redis://127.0.0.1:6391/2", "redis://127.0.0.1:6390/2", False),
        ("redis://:a@h:1/0", "redis://:b@h:1/0", False),
        ("rediss://h:1/0", "redis://h:1/0", False),
        ("amqp://guest@h//", "redis://h:1/0", False),
        ("sentinel://h:26379", "sentinel://h:26379", False),
        (None, "redis://h:1/0", False),
    ],
)
def test_the_broker_is_the_store_only_at_the_same_address_database_and_credentials(
    broker: str | None, store: str, same: bool
):
    assert same_redis(broker, store) is same


def test_sends_are_direct_only_on_the_stores_own_redis(make_app, settings, monkeypatch):
    assert make_app(eager=False).flowqueue.orchestrator.sender.direct
    assert not make_app(eager=True).flowqueue.orchestrator.sender.direct  # runs inline
    app = make_app(eager=False)
    app.conf.broker_transport_options = {"global_keyprefix": "x:"}  # keys kombu prefixes
    assert not app.flowqueue.orchestrator.sender.direct
    monkeypatch.setenv("CELERY_BROKER_URL", settings.redis_url.rsplit("/", 1)[0] + "/9")
    assert not make_app(eager=False).flowqueue.orchestrator.sender.direct


def message(raw: bytes | str) -> dict[str, Any]:
    """A queued message, without what differs between any two sends of it."""
    parsed: dict[str, Any] = json.loads(raw)
    del parsed["properties"]["delivery_tag"]
    return parsed


def test_a_direct_send_is_the_message_kombu_would_publish(make_app, redis_client: redis.Redis):
    app = make_app(eager=False)
    orchestrator = app.flowqueue.orchestrator
    step = app.flowqueue.flows.flow("order").step("validate")
    to_send = orchestrator.message("r-1", "order", step, ORDER, new_run=True)
    redis_client.delete(QUEUE)
    writes = orchestrator.sender.writes(to_send)
    to_send.task.apply_async(**to_send.options)  # kombu publishes the same message
    published = redis_client.rpop(QUEUE)
    assert redis_client.llen(QUEUE) == 0
    (key, payload) = next(args for name, args in writes if name == "lpush")
    assert key == QUEUE
    assert message(payload) == message(published)
    assert message(payload)["headers"]["shadow"] == "order/validate"
    # and its task-sent event, which Flower reads, goes where kombu's goes
    assert [args[0] for name, args in writes if name == "publish"] == ["/0.celeryev/task.sent"]


def test_a_step_routed_to_its_own_queue_is_queued_there(make_app, redis_client: redis.Redis):
    app = make_app(eager=False)
    app.conf.task_routes = {"workers.orders.*": {"queue": "orders"}}
    redis_client.delete("orders\x06\x163", QUEUE)
    run = start_flow("order", ORDER, app=app)
    queued = redis_client.lrange("orders\x06\x163", 0, -1)
    assert [json.loads(m)["headers"]["id"] for m in queued] == [f"{run}:validate"]
    assert redis_client.llen(QUEUE) == 0


def test_a_step_routed_to_no_queue_is_refused_and_nothing_is_written(make_app):
    from kombu import Exchange, Queue

    app = make_app(eager=False)
    everyone = Queue("everyone", Exchange("everyone", type="fanout"))  # a broadcast
    app.conf.task_routes = {"workers.orders.*": {"queue": everyone}}
    with pytest.raises(ConfigurationError, match="to no queue"):
        start_flow("order", ORDER, app=app)
    assert app.flowqueue.store.list_runs("order") == []


def test_a_start_queues_its_entry_steps_in_the_same_call(make_app, redis_client: redis.Redis):
    app = make_app(eager=False)  # no worker: the entry steps wait in the broker
    redis_client.delete(QUEUE)
    run = start_flow("order", ORDER, app=app)
    queued = [json.loads(m) for m in redis_client.lrange(QUEUE, 0, -1)]
    assert [m["headers"]["id"] for m in queued] == [f"{run}:validate"]
    assert "start" not in queued[0]["headers"]["flowqueue"]  # no note: start and send are one
    assert [e.kind for e in app.flowqueue.store.read(run)] == [EventKind.FLOW_STARTED]


def test_a_start_whose_run_exists_sends_nothing(make_app, redis_client: redis.Redis):
    app = make_app(eager=False)
    run = start_flow("order", ORDER, app=app)
    redis_client.delete(QUEUE)
    fq = app.flowqueue
    with pytest.raises(Exception, match="exists already"):
        fq.orchestrator.start_run("order", ORDER, run_id=run)
    assert redis_client.llen(QUEUE) == 0
    assert [e.kind for e in fq.store.read(run)] == [EventKind.FLOW_STARTED]


def test_an_emit_sends_the_step_it_claims_once(make_app, redis_client: redis.Redis):
    app = make_app(eager=False)
    fq = app.flowqueue
    run = start_flow("order", ORDER, app=app)
    step = fq.flows.flow("order").step("reserve_stock")
    writes = fq.orchestrator.sender.writes(
        fq.orchestrator.message(run, "order", step, {"go": {"x": 1}})
    )
    candidate = [Candidate("reserve_stock", ["go"])]
    key = next(args[0] for name, args in writes if name == "lpush")
    redis_client.delete(key)
    for attempt in (1, 2):  # the second emit of the name claims nothing
        event = run_event(EventKind.EMIT, run, "order", name="go", payload={"x": attempt})
        emitted = fq.coordinator.emit(
            event, {"x": attempt}, candidate, sends={"reserve_stock": writes}
        )
        assert [c.sent for c in emitted.claims] == ([True] if attempt == 1 else [])
    assert redis_client.llen(key) == 1


def test_a_script_refuses_anything_but_broker_writes_and_writes_nothing(
    make_app, redis_client: redis.Redis
):
    app = make_app(eager=False)
    fq = app.flowqueue
    started = fq.orchestrator._started(fq.flows.flow("order"), ORDER, "r-bad", {"kind": "manual"})
    redis_client.set("victim", "1")
    with pytest.raises(redis.ResponseError, match="not a broker write: del"):
        fq.coordinator.start_run(started, ["validate"], [("del", ("victim",))])
    assert redis_client.get("victim") == b"1"
    assert fq.store.read("r-bad") == []


@pytest.mark.e2e
def test_flows_run_with_celery_publishing_on_another_broker(
    redis_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from tests.worker_harness import Cluster, own_database

    monkeypatch.setenv("CELERY_BROKER_URL", own_database(redis_server.url))
    group = Cluster(redis_server.url, tmp_path)
    try:
        assert not group.fq.orchestrator.sender.direct
        group.start_worker(concurrency=2)
        runs = [start_flow("order", ORDER, app=group.app) for _ in range(3)]
        runs.append(start_flow("example-flow", {"name": "bo"}, app=group.app))
        ended = group.wait_all(runs)
        assert {events[-1].kind for events in ended.values()} == {EventKind.FLOW_COMPLETED}
    finally:
        group.close()


def test_a_store_away_at_the_first_send_is_redis_away_and_decided_again(make_app):
    app = make_app(eager=False, redis_url="redis://127.0.0.1:9/0")  # nothing listens there
    sender = app.flowqueue.orchestrator.sender
    with pytest.raises(redis.ConnectionError):  # what the API and CLI answer 503 / exit 1 for
        start_flow("order", ORDER, app=app)
    assert "direct" not in vars(sender)  # not decided: the next send tries again
