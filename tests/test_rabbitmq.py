"""RabbitMQ as the Celery broker, with the store on Redis: real ``celery -A flowqueue
worker`` processes on a vhost of the machine's RabbitMQ that this module creates and
deletes (``rabbitmqctl``). Skipped, saying why, where there is none.

Flows with joins, fan-out, sleeps and retries complete once each; a due sleep is queued
ahead of new runs (the queue's ``x-max-priority``); a SIGKILLed worker's step runs again.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kombu import Connection

from flowqueue import create_app, start_flow
from flowqueue.model.timers import TimerSpec
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.settings import Settings
from tests.test_e2e_faults import killed_mid_step, step_kinds
from tests.worker_harness import Cluster, own_database

pytestmark = pytest.mark.e2e
ORDER = {"order_id": "rmq-1", "items": [{"sku": "fig", "quantity": 1}], "card": "5555"}


def rabbitmqctl(*args: str) -> None:
    ctl = shutil.which("rabbitmqctl") or "rabbitmqctl"
    subprocess.run([ctl, *args], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def vhosts() -> Iterator[Callable[[], str]]:
    """Makes vhosts of their own on the machine's RabbitMQ (127.0.0.1:5672), each for one
    cluster (clusters on one vhost would take each other's messages); deletes them after."""
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("RABBITMQ TESTS SKIPPED: no rabbitmqctl here (install rabbitmq-server)")
    made: list[str] = []

    def make() -> str:
        vhost = f"fq-{uuid.uuid4().hex[:10]}"
        try:
            rabbitmqctl("add_vhost", vhost)
            made.append(vhost)
            rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
            url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
            with Connection(url, connect_timeout=5) as connection:
                connection.ensure_connection(max_retries=1)
        except Exception as exc:  # no RabbitMQ answering here: say so, loudly
            pytest.skip(f"RABBITMQ TESTS SKIPPED: no usable vhost on the local RabbitMQ: {exc}")
        return url

    yield make
    for vhost in made:
        rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="module")
def rabbitmq(vhosts: Callable[[], str]) -> str:
    return vhosts()


def cluster_on(broker: str, redis_url: str, log_dir: Any, **settings: Any) -> Cluster:
    """A Cluster whose workers and client app use ``broker`` (the store stays on Redis)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELERY_BROKER_URL", broker)
        return Cluster(redis_url, log_dir, **settings)


@pytest.fixture(scope="module")
def on_rabbitmq(rabbitmq, redis_server, tmp_path_factory) -> Iterator[Cluster]:
    cluster = cluster_on(rabbitmq, redis_server.url, tmp_path_factory.mktemp("rabbitmq"))
    cluster.start_worker(concurrency=2)
    yield cluster
    cluster.close()


def test_flows_complete_once_on_rabbitmq(on_rabbitmq):
    app = on_rabbitmq.app
    assert app.conf.broker_url.startswith("amqp://")
    runs = {
        "order": start_flow("order", ORDER, app=app),
        "order-fanout": start_flow("order-fanout", {"order_id": "rmq-fan"}, app=app),
        "nap": start_flow("nap", {"seconds": 0.5}, app=app),
        "partner-sync": start_flow("partner-sync", {"account": "rmq"}, app=app),
    }
    for flow, run in runs.items():
        log = on_rabbitmq.wait_terminal(run, timeout=60)
        assert log[-1].kind == "flow.completed", (flow, log[-1])
        steps = {e.step for e in log if e.step}
        for step in steps:  # each step completed once, however often it was delivered
            assert step_kinds(log, step).count("step.completed") == 1, (flow, step)
    sync = on_rabbitmq.fq.store.read(runs["partner-sync"])
    assert [e.data["attempt"] for e in sync if e.kind == "step.failed"] == [1, 2]  # retried


def test_a_due_sleep_is_queued_ahead_of_new_runs_on_rabbitmq(vhosts, redis_server):
    """No worker consumes this queue: what RabbitMQ hands out first is what a worker
    would run first."""
    settings = Settings(
        redis_url=own_database(redis_server.url),
        key_prefix=f"p{uuid.uuid4().hex[:8]}",
        workers="tests.flows",
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELERY_BROKER_URL", broker := vhosts())
        app = create_app(settings)
    app.conf.task_default_queue = queue = f"q{uuid.uuid4().hex[:8]}"
    fq = flowqueue_of(app)
    try:
        new_runs = [start_flow("nap", {"seconds": 1}, app=app) for _ in range(3)]
        wake = TimerSpec(kind="wake", run_id=new_runs[-1], flow="nap", step="nap", key="nap#2")
        fq.orchestrator.fire(wake.member())  # what the pump does when a sleep falls due
        with Connection(broker) as connection:
            channel = connection.default_channel
            taken = []
            while (message := channel.basic_get(queue=queue, no_ack=True)) is not None:
                headers = message.headers or message.properties.get("application_headers", {})
                taken.append((headers["id"].split(":")[0], message.properties.get("priority")))
        assert taken[0] == (new_runs[-1], 9)  # the wake, though sent last
        assert sorted(run for run, _ in taken[1:]) == sorted(new_runs)
    finally:
        fq.store.close()


def test_a_sigkilled_workers_step_runs_again_on_rabbitmq(vhosts, redis_server, tmp_path):
    log = killed_mid_step(cluster_on(vhosts(), redis_server.url, tmp_path, step_lease_seconds=2))
    started = [e for e in log if e.kind == "step.started" and e.step == "slow_step"]
    assert [e.data["attempt"] for e in started] == [1, 2]
    assert step_kinds(log, "slow_step").count("step.completed") == 1
    assert log[-1].kind == "flow.completed"
