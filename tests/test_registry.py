"""The worker registry: the reducer, trimming, the readers and real workers coming and going."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flowqueue.backend.redis.keys import Keys
from flowqueue.runtime.workers import (
    EVENT_FIELD,
    PAGE,
    WorkerEvent,
    WorkerInfo,
    WorkerRegistration,
    append_event,
    decode_entries,
    read_workers,
    read_workers_async,
    workers_from,
)
from flowqueue.settings import Settings

T0 = datetime(2024, 6, 29, 12, 0, tzinfo=UTC)
INFO = {
    "pid": 11,
    "queues": ["celery"],
    "flows": {"order": ["validate", "ship"]},
    "concurrency": 4,
    "version": "1.0",
}


def ev(kind: str, host: str, seconds: float, **data: object) -> tuple[str, WorkerEvent]:
    ts = T0 + timedelta(seconds=seconds)
    return f"{int(ts.timestamp() * 1000)}-0", WorkerEvent(
        kind=kind, hostname=host, ts=ts, data=data
    )


def by_host(workers: list[WorkerInfo]) -> dict[str, WorkerInfo]:
    return {w.hostname: w for w in workers}


# -- the reducer ---------------------------------------------------------------------------


def test_reducer_online_lost_offline_and_sorted():
    events = [
        ev("worker.registered", "b@h", 0, **INFO),
        ev("worker.registered", "a@h", 0, **{**INFO, "pid": 12}),
        ev("worker.registered", "c@h", 0, **{**INFO, "pid": 13}),
        ev("worker.heartbeat", "b@h", 25, pid=11, active=2),
        ev("worker.heartbeat", "a@h", 5, pid=12),
        ev("worker.deregistered", "c@h", 8, pid=13),
    ]
    workers = workers_from(events, now=T0 + timedelta(seconds=30), lost_after=20)
    assert [w.hostname for w in workers] == ["a@h", "b@h", "c@h"]
    a, b, c = workers
    assert (a.status, b.status, c.status) == ("lost", "online", "offline")
    assert b.pid == 11
    assert b.queues == ["celery"]
    assert b.flows == {"order": ["validate", "ship"]}
    assert (b.concurrency, b.version) == (4, "1.0")
    assert b.registered_at == T0
    assert b.last_seen == T0 + timedelta(seconds=25)
    assert b.live == {"active": 2}
    assert c.last_seen == T0 + timedelta(seconds=8)
    # An offline worker stays offline however long ago it left.
    later = workers_from(events, now=T0 + timedelta(hours=1), lost_after=20)
    assert [w.status for w in later] == ["lost", "lost", "offline"]


def test_reducer_register_again_after_deregistering():
    events = [
        ev("worker.registered", "a@h", 0, **INFO),
        ev("worker.deregistered", "a@h", 10, pid=11),
        ev("worker.heartbeat", "a@h", 11, pid=11),  # a beat racing the shutdown
    ]
    (gone,) = workers_from(events, now=T0 + timedelta(seconds=12), lost_after=20)
    assert gone.status == "offline"
    events.append(ev("worker.registered", "a@h", 60, **{**INFO, "pid": 99, "queues": ["q2"]}))
    (back,) = workers_from(events, now=T0 + timedelta(seconds=61), lost_after=20)
    assert (back.status, back.pid, back.queues) == ("online", 99, ["q2"])
    assert back.registered_at == T0 + timedelta(seconds=60)
    # A late event of the old process does not touch the new one.
    events.append(ev("worker.deregistered", "a@h", 62, pid=11))
    (still,) = workers_from(events, now=T0 + timedelta(seconds=63), lost_after=20)
    assert still.status == "online"


def test_reducer_heartbeat_without_registration_and_kept_start_time():
    started = "2024-06-29T11:00:00.000Z"
    events = [
        ev("worker.heartbeat", "a@h", 0, pid=5),  # its registration was trimmed away
        ev("worker.registered", "b@h", 0, **INFO, started_at=started),  # a re-registration
    ]
    a, b = workers_from(events, now=T0 + timedelta(seconds=1), lost_after=20)
    assert (a.status, a.pid, a.registered_at, a.flows) == ("online", 5, None, {})
    assert b.registered_at == datetime(2024, 6, 29, 11, tzinfo=UTC)


def test_event_json_round_trip():
    _, event = ev("worker.heartbeat", "a@h", 0.123, pid=1)
    text = event.model_dump_json()
    assert '"ts":"2024-06-29T12:00:00.123Z"' in text
    assert WorkerEvent.model_validate_json(text) == event


# -- Redis: trimming and the readers -------------------------------------------------------


def test_append_trims_entries_older_than_the_retention(redis_client, settings):
    keys = Keys(settings.key_prefix)
    settings = settings.model_copy(update={"registry_retention_seconds": 60})
    old_ms = int(time.time() * 1000) - 3_600_000  # an hour ago: far beyond the retention
    old = WorkerEvent(kind="worker.heartbeat", hostname="old@h", ts=T0, data={})
    # More than one radix-tree node of old entries: MINID ~ trims whole nodes only.
    for seq in range(250):
        redis_client.xadd(keys.registry, {EVENT_FIELD: old.model_dump_json()}, id=f"{old_ms}-{seq}")
    recent_ms = int(time.time() * 1000) - 10_000  # inside the retention: kept
    redis_client.xadd(keys.registry, {EVENT_FIELD: old.model_dump_json()}, id=f"{recent_ms}-0")
    new = WorkerEvent.new("worker.heartbeat", "new@h", {"pid": 1})
    new_id = append_event(redis_client, keys, settings, new)
    ids = [entry_id.decode() for entry_id, _ in redis_client.xrange(keys.registry)]
    assert len(ids) < 100 + 2  # at most one partly filled node of old entries is left
    assert ids[-2:] == [f"{recent_ms}-0", new_id]


def test_sync_and_async_readers_page_through_the_stream(redis_server, redis_client, settings):
    keys = Keys(settings.key_prefix)
    now_ms = int(time.time() * 1000)
    registered = WorkerEvent.new("worker.registered", "a@h", INFO, now_ms - 5_000)
    append_event(redis_client, keys, settings, registered)
    beat = WorkerEvent.new("worker.heartbeat", "a@h", {"pid": 11}, now_ms - 1_000).model_dump_json()
    pipe = redis_client.pipeline(transaction=False)
    for _ in range(PAGE + 5):  # more than one page
        pipe.xadd(keys.registry, {EVENT_FIELD: beat})
    pipe.execute()
    bye = WorkerEvent.new("worker.deregistered", "b@h", {"pid": 3}, now_ms)
    append_event(redis_client, keys, settings, bye)
    redis_client.xadd(keys.registry, {"junk": "1"})  # not a registry event: skipped

    workers = read_workers(redis_client, keys, settings)
    assert [(w.hostname, w.status) for w in workers] == [("a@h", "online"), ("b@h", "offline")]
    assert workers[0].last_seen == registered.ts + timedelta(seconds=4)

    async def read() -> list[WorkerInfo]:
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            return await read_workers_async(client, keys, settings)
        finally:
            await client.aclose()

    assert asyncio.run(read()) == workers
    late = datetime.now(UTC) + timedelta(hours=1)
    assert [w.status for w in read_workers(redis_client, keys, settings, now=late)] == [
        "lost",
        "offline",
    ]
    assert (
        read_workers(redis.Redis.from_url(redis_server.url), Keys("nothing-here"), settings) == []
    )


def test_registration_beats_and_survives_redis_being_away(redis_client, settings, caplog):
    keys = Keys(settings.key_prefix)
    fast = settings.model_copy(update={"heartbeat_seconds": 0.05})
    registration = WorkerRegistration(fast, live=lambda: {"active": 0})
    registration.start("r@h", {"queues": ["celery"], "flows": {}})
    try:
        deadline = time.monotonic() + 5
        while redis_client.xlen(keys.registry) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        (info,) = read_workers(redis_client, keys, fast)
        assert (info.status, info.queues, info.live) == ("online", ["celery"], {"active": 0})
        # Redis goes away: the beat logs a warning and raises nothing.
        registration._client = redis.Redis(port=9, retry=Retry(NoBackoff(), 0))
        with caplog.at_level("WARNING", logger="flowqueue.runtime.workers"):
            registration.beat()
        assert "could not append worker.heartbeat" in caplog.text
        assert registration._thread is not None
        assert registration._thread.is_alive()
        registration._client = redis.Redis.from_url(fast.redis_url)
    finally:
        registration.stop()
    (info,) = read_workers(redis_client, keys, fast)
    assert info.status == "offline"


def kinds_in(client: redis.Redis, keys: Keys) -> list[str]:
    return [event.kind for _, event in decode_entries(client.xrange(keys.registry))]


def test_a_worker_registers_again_once_its_registration_is_gone(redis_client, settings):
    """Redis restarted without its data (or was flushed): the next beat registers again,
    so the worker's flows and queues show, not a heartbeat without them."""
    keys = Keys(settings.key_prefix)
    registration = WorkerRegistration(settings)  # beats by hand: no waiting on the thread
    registration.start("again@h", {"queues": ["celery"], "flows": {"f": ["s"]}})
    try:
        registration.beat()
        assert kinds_in(redis_client, keys) == [
            "worker.registered",
            "worker.heartbeat",
        ]
        redis_client.delete(keys.registry)
        registration.beat()
        (info,) = read_workers(redis_client, keys, settings)
        assert (info.status, info.queues, info.flows) == ("online", ["celery"], {"f": ["s"]})
        registration.beat()
        assert kinds_in(redis_client, keys) == [
            "worker.registered",
            "worker.heartbeat",
        ]
    finally:
        registration.stop()


def test_registration_is_a_no_op_in_memory_mode():
    registration = WorkerRegistration(Settings(redis_url="memory://"))
    registration.start("m@h", {})
    registration.beat()
    registration.stop()
    assert registration._thread is None


# -- real workers ----------------------------------------------------------------------------


@pytest.mark.e2e
def test_real_workers_register_beat_leave_and_get_lost(redis_server, tmp_path):
    from tests.worker_harness import Cluster

    cluster = Cluster(
        redis_server.url, tmp_path, heartbeat_seconds=0.3, worker_lost_after_seconds=2
    )
    client = redis.Redis.from_url(cluster.url)
    keys = Keys(cluster.prefix)

    def workers() -> dict[str, WorkerInfo]:
        return by_host(read_workers(client, keys, cluster.settings))

    try:
        leaving = cluster.start_worker(concurrency=1)
        killed = cluster.start_worker(concurrency=1)
        cluster.wait_for(lambda: len(workers()) == 2, "two registered workers", 10)
        first = min(workers().values(), key=lambda w: w.hostname)
        assert first.hostname.startswith(f"w1-{cluster.prefix}@")
        assert first.status == "online"
        assert first.pid == leaving.process.pid
        assert first.concurrency == 1
        assert first.flows["example-flow"] == ["first_step", "second_step"]
        assert "celery" in first.queues
        assert first.version
        registered_seen = first.last_seen
        cluster.wait_for(
            lambda: workers()[first.hostname].last_seen > registered_seen, "a heartbeat", 5
        )

        leaving.stop()
        assert workers()[first.hostname].status == "offline"

        second = next(h for h in workers() if h != first.hostname)
        killed.kill()  # SIGKILL: no goodbye
        assert workers()[second].status == "online"
        cluster.wait_for(lambda: workers()[second].status == "lost", "a lost worker", 6)
        assert workers()[first.hostname].status == "offline"
    finally:
        client.close()
        cluster.close()
