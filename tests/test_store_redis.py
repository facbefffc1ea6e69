"""Behaviour only Redis decides: key layout, the feed, one Pub/Sub connection, restarts."""

from __future__ import annotations

import asyncio
import threading

import redis

from flowqueue.backend.redis.embedded import EmbeddedRedis
from flowqueue.backend.redis.keys import Keys
from flowqueue.backend.redis.store import RedisEventStore
from flowqueue.settings import Settings

from .helpers import ev, logs


def test_keys_share_the_run_hash_tag():
    keys = Keys("fq")
    run_keys = [keys.run_stream("abc"), keys.run_live("abc"), keys.run_meta("abc")]
    assert all("{abc}" in key for key in run_keys)
    assert keys.run_stream("abc") == "fq:run:{abc}"


def test_append_writes_stream_bookkeeping_index_and_feed(settings, redis_client):
    store = RedisEventStore(settings)
    keys = Keys(settings.key_prefix)
    started = store.append(ev("flow.started", "r1", step=None, input={}))
    store.append(ev("step.started", "r1", attempt=1))
    store.append(ev("log", "r1", msg="not lifecycle"))
    done = store.append(ev("flow.completed", "r1", step=None))

    assert redis_client.xlen(keys.run_stream("r1")) == 4
    meta = redis_client.hgetall(keys.run_meta("r1"))
    assert meta[b"status"] == b"completed"
    assert meta[b"flow"] == b"flow-a"
    assert meta[b"started_ms"] == started.id.split("-")[0].encode()
    assert meta[b"ended_ms"] == done.id.split("-")[0].encode()
    assert redis_client.zrange(keys.flow_runs("flow-a"), 0, -1) == [
        f"{int(started.id.split('-')[0]):013d}:r1".encode()
    ]
    feed = redis_client.xrange(keys.feed)
    assert [fields[b"id"].decode() for _, fields in feed] == [
        e.id for e in store.read("r1") if e.kind != "log"
    ]
    store.close()


def test_append_is_one_round_trip(settings):
    # A server of its own: workers of other tests would add their commands to the count.
    with EmbeddedRedis() as server:
        store = RedisEventStore(settings.model_copy(update={"redis_url": server.url}))
        client = redis.Redis.from_url(server.url)
        store.append(ev("log", "warm"))  # loads the script
        before = client.info("stats")["total_commands_processed"]
        store.append_many(logs("rt", 100))
        after = client.info("stats")["total_commands_processed"]
        # EVALSHA itself plus the INFO call; the script's inner commands are counted too
        # (XADD per event, one HINCRBY of the flow's event count, one PUBLISH for the
        # batch), but the client sent exactly one request.
        assert after - before == 1 + 1 + 100 + 1 + 1
        store.close()
        client.close()


def test_all_subscribers_share_one_pubsub_connection(settings, redis_client):
    store = RedisEventStore(settings)

    async def scenario() -> int:
        aio = store.aio

        async def follow(run: str) -> None:
            async for event in aio.subscribe(run):
                if event.data.get("i") == 0:
                    return

        tasks = [asyncio.create_task(follow(f"pub-{n}")) for n in range(25)]
        await asyncio.sleep(0.2)
        # Count this store's Pub/Sub clients only (named after its key prefix).
        name = f"flowqueue:{settings.key_prefix}"
        clients = redis_client.client_list(_type="pubsub")
        pubsub_clients = len([c for c in clients if c["name"] == name])
        for n in range(25):
            await aio.append(ev("log", f"pub-{n}", i=0))
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        await aio.aclose()
        return pubsub_clients

    assert asyncio.run(scenario()) == 1
    store.close()


def test_subscription_survives_a_redis_restart_without_gap():
    with EmbeddedRedis(appendonly=True) as server:
        settings = Settings(redis_url=server.url)
        writer = RedisEventStore(settings)
        reader = RedisEventStore(settings)
        writer.append_many(logs("restart", 10))
        got: list[int] = []
        done = threading.Event()

        def follow() -> None:
            for event in reader.subscribe("restart"):
                got.append(event.data["i"])
                if event.data["i"] == 29:
                    break
            done.set()

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        writer.append_many(logs("restart", 10, start=10))
        server.restart()  # the live connection drops; events 20..29 arrive while it is away
        writer.append_many(logs("restart", 10, start=20))
        assert done.wait(30), f"subscriber stalled after restart, got {got}"
        assert got == list(range(30))
        reader.close()
        writer.close()


def test_store_never_uses_the_default_redis(settings):
    assert not settings.redis_url.endswith(":6379/0")
    assert redis.Redis.from_url(settings.redis_url).ping()
