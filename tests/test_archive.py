"""The Postgres archive (FLOWQUEUE_ARCHIVE_URL) at the store level, on the machine's
PostgreSQL (a database the suite creates and drops) and the suite's redis-server.

A run read from the archive, once Redis has deleted it, reads exactly as it did from
Redis: the reads of the store conformance suite run on both and are compared. An ended
run waits in Redis, with no expiry, until the archiver copied it.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flowqueue.backend.redis.archiving import RedisArchiving
from flowqueue.backend.redis.store import AsyncRedisEventStore, RedisEventStore
from flowqueue.errors import ArchiveUnavailable, ConfigurationError, InvalidEvent
from flowqueue.model.events import Event, NewEvent
from flowqueue.runtime._archiver import Archiver
from flowqueue.runtime._connections import Connections, open_archive
from flowqueue.settings import Settings
from tests.postgres import postgres_database as postgres_database

RETENTION = 0.3  # seconds an archived run stays in Redis: the tests wait it out


def ev(kind: str, run: str, step: str | None = "s", **data: Any) -> NewEvent:
    return NewEvent(kind=kind, run_id=run, flow="flow-a", step=step, data=data)


def whole_run(run: str, lines: int, end: str = "flow.completed") -> list[NewEvent]:
    logs = [ev("log", run, msg=f"line {i}", i=i) for i in range(lines)]
    return [ev("flow.started", run, step=None, input={"n": lines}), *logs, ev(end, run, step=None)]


@pytest.fixture
def archive_url(postgres_database: Callable[[], str]) -> str:
    return postgres_database()  # one per test: its runs are all a list holds


@pytest.fixture
def make_connections(redis_server, archive_url) -> Iterator[Callable[..., Connections]]:
    made: list[Connections] = []
    prefix = f"a{uuid.uuid4().hex[:8]}"  # one per test: runs of other tests stay apart

    def build(**overrides: Any) -> Connections:
        named: dict[str, Any] = {
            "redis_url": redis_server.url,
            "key_prefix": prefix,
            "archive_url": archive_url,
            "completed_retention_seconds": RETENTION,
            "failed_retention_seconds": RETENTION,
            "cancelled_retention_seconds": RETENTION,
        }
        settings = Settings(**named | overrides)
        made.append(Connections(settings))
        return made[-1]

    yield build
    for connections in made:
        connections.close()


@pytest.fixture
def connections(make_connections) -> Connections:
    return make_connections()


def store_of(connections: Connections) -> RedisEventStore:
    store = connections.store
    assert isinstance(store, RedisEventStore)
    return store


def archive_all(connections: Connections) -> int:
    """Run the archiver until no ended run waits; how many it copied."""
    archiver, copied = Archiver(connections), 0
    waiting = RedisArchiving(store_of(connections))
    while waiting.waiting():
        copied += archiver.archive_once()
    archiver.stop()
    return copied


def wait_gone(store: RedisEventStore, *runs: str, timeout: float = 15.0) -> None:
    """Until Redis has deleted the runs' logs (their retention passed)."""
    keys = [store.commands.keys.run_stream(run) for run in runs]
    deadline = time.monotonic() + timeout
    while store.client.exists(*keys):
        assert time.monotonic() < deadline, "archived runs were not deleted from Redis"
        time.sleep(0.05)


def reads(store: RedisEventStore, run: str) -> dict[str, Any]:
    """Every read of the conformance suite, as JSON."""
    ids = [event.id for event in store.read(run)]

    def dump(events: list[Event]) -> list[dict[str, Any]]:
        return [event.model_dump(mode="json") for event in events]

    forward, cursor = [], None
    while page := store.read(run, after=cursor, limit=333):
        forward += dump(page)
        cursor = page[-1].id
    backward, cursor = [], None
    while page := store.read_reverse(run, before=cursor, limit=777):
        backward += dump(page)
        cursor = page[-1].id

    async def via_aio() -> list[Any]:
        aio = AsyncRedisEventStore(store.settings, archive=store.archive)
        try:
            return [
                dump(await aio.read(run)),
                dump(await aio.read(run, after=ids[len(ids) // 2], limit=5)),
                dump(await aio.read_reverse(run, before=ids[3], limit=10)),
                await aio.count(run),
            ]
        finally:
            await aio.aclose()

    return {
        "whole": dump(store.read(run)),
        "forward": forward,
        "backward": backward,
        "middle": dump(store.read(run, after=ids[len(ids) // 2], limit=2)),
        "before": dump(store.read_reverse(run, before=ids[len(ids) // 2], limit=2)),
        "past the end": dump(store.read(run, after=ids[-1])),
        "before the start": dump(store.read_reverse(run, before=ids[0])),
        "none": dump(store.read(run, limit=0)),
        "count": store.count(run),
        "aio": asyncio.run(via_aio()),
    }


def test_an_archived_run_reads_as_it_did_from_redis(connections):
    store = store_of(connections)
    events = whole_run("big", 2_998)
    for start in range(0, len(events), 1_000):
        store.append_many(events[start : start + 1_000])
    before = reads(store, "big")
    assert before["count"] == 3_000
    assert [e["id"] for e in before["forward"]] == [e["id"] for e in before["whole"]]

    assert archive_all(connections) == 1
    wait_gone(store, "big")
    after = reads(store, "big")
    assert after == before
    assert store.read("no-such-run") == []
    assert store.count("no-such-run") == 0


def test_a_subscriber_gets_an_archived_runs_log_as_backfill(connections):
    store = store_of(connections)
    stored = store.append_many(whole_run("sub", 40))
    archive_all(connections)
    wait_gone(store, "sub")
    got = list(itertools.islice(store.subscribe("sub"), len(stored)))
    assert [e.model_dump() for e in got] == [e.model_dump() for e in stored]
    middle = stored[20].id
    got = list(itertools.islice(store.subscribe("sub", after=middle), len(stored) - 21))
    assert [e.id for e in got] == [e.id for e in stored[21:]]


def test_run_lists_page_across_redis_and_the_archive(connections):
    store = store_of(connections)
    runs = [f"r{n:02d}" for n in range(30)]
    for n, run in enumerate(runs):
        events = whole_run(run, 1) if n % 3 else whole_run(run, 1)[:-1]  # every third runs on
        store.append_many(events)
        time.sleep(0.002)  # distinct start times
    archive_all(connections)
    wait_gone(store, *[run for n, run in enumerate(runs) if n % 3])
    assert store.count("r01") == 3
    assert store.count("r00") == 2

    expected = runs[::-1]  # newest first
    for limit in (1, 7, 30, 50):
        paged, cursor = [], None
        while page := store.list_runs("flow-a", limit=limit, before=cursor):
            paged += page
            cursor = page[-1].run_id
        assert [run.run_id for run in paged] == expected
        statuses = {run.run_id: run.status for run in paged}
        assert statuses["r00"] == "running"
        assert statuses["r01"] == "completed"

    async def aio_pages() -> list[str]:
        aio = AsyncRedisEventStore(store.settings, archive=store.archive)
        try:
            first = await aio.list_runs("flow-a", limit=11)
            rest = await aio.list_runs("flow-a", limit=50, before=first[-1].run_id)
        finally:
            await aio.aclose()
        return [run.run_id for run in first + rest]

    assert asyncio.run(aio_pages()) == expected
    with pytest.raises(InvalidEvent, match="before='nope' is not a run of this flow"):
        store.list_runs("flow-a", before="nope")


def test_nothing_expires_while_the_archive_is_away(make_connections, archive_url):
    away = make_connections(archive_url="postgresql://nobody@127.0.0.1:1/none")
    store = store_of(away)
    store.append_many(whole_run("wait-1", 3))
    store.append_many(whole_run("wait-2", 3, end="flow.failed"))
    with pytest.raises(ArchiveUnavailable, match=r"127\.0\.0\.1:1/none did not answer"):
        Archiver(away).archive_once()
    time.sleep(RETENTION * 2)
    for run in ("wait-1", "wait-2"):  # kept, with no expiry, past their retention
        assert store.client.pttl(store.commands.keys.run_stream(run)) == -1
    assert RedisArchiving(store).waiting() == 2

    back = make_connections()  # the same Redis, the archive reachable
    assert archive_all(back) == 2
    wait_gone(store, "wait-1", "wait-2")
    assert [e.kind for e in store_of(back).read("wait-2")][-1] == "flow.failed"


def test_a_copy_is_idempotent_and_a_run_appended_to_since_is_copied_again(connections):
    store = store_of(connections)
    waiting = RedisArchiving(store)
    store.append_many(whole_run("late", 2))
    runs, others = waiting.take(10)
    assert [run.summary.run_id for run in runs] == ["late"]
    assert others == []
    archive = store.archive
    assert archive is not None
    archive.save(runs)
    archive.save(runs)  # a worker died between the copy and archived.lua: copied again
    assert archive.count("late") == 4
    store.append(ev("log", "late", msg="after the copy was read"))
    assert waiting.archived(runs, others) == 0  # its retention waits for a full copy
    assert waiting.waiting() == 1
    assert archive_all(connections) == 1
    wait_gone(store, "late")
    assert [e.data.get("msg") for e in store.read("late")][-1] == "after the copy was read"
    assert store.count("late") == 5


def test_a_run_started_again_after_its_copy_is_copied_again_when_it_ends(connections):
    store = store_of(connections)
    store.append_many(whole_run("again", 1, end="flow.failed"))
    runs, _ = RedisArchiving(store).take(10)
    store.append_many([ev("flow.started", "again", step=None, input={}), ev("log", "again")])
    RedisArchiving(store).archived(runs, [])  # not ended any more: leaves the wait
    assert RedisArchiving(store).waiting() == 0
    assert store.client.pttl(store.commands.keys.run_stream("again")) == -1  # kept
    store.append(ev("flow.completed", "again", step=None))
    assert archive_all(connections) == 1
    wait_gone(store, "again")
    kinds = [e.kind for e in store.read("again")]
    assert kinds == ["flow.started", "log", "flow.failed", "flow.started", "log", "flow.completed"]
    assert store.list_runs("flow-a")[0].status == "completed"


def test_one_archiver_at_a_time(make_connections):
    first, second = Archiver(make_connections()), Archiver(make_connections())
    store = store_of(first.connections)
    lease = RedisArchiving(store)
    assert lease.hold(first.token, 30_000)
    assert not lease.hold(second.token, 30_000)
    assert lease.hold(first.token, 30_000)  # renewed
    second.stop()  # not its lease: kept
    assert not lease.hold(second.token, 30_000)
    first.stop()
    assert lease.hold(second.token, 30_000)


def test_migrations_apply_once_however_many_workers_start_together(postgres_database):
    from flowqueue.backend.postgres._migrations import migrate, migrations
    from flowqueue.backend.postgres.archive import PostgresArchive

    url = postgres_database()
    archives = [PostgresArchive(url) for _ in range(4)]
    errors: list[BaseException] = []

    def first_read(archive: PostgresArchive) -> None:
        try:
            archive.count("x")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_read, args=(a,)) for a in archives]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    import psycopg

    with psycopg.connect(url) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM flowqueue_schema")]
        assert versions == [version for version, _ in migrations()]
        conn.execute("INSERT INTO flowqueue_schema (version) VALUES (999)")
        conn.commit()
        with pytest.raises(ConfigurationError, match="version 999, newer than this flowqueue"):
            migrate(conn)
    for archive in archives:
        archive.close()


def test_bad_archive_settings_say_what_to_do(monkeypatch):
    with pytest.raises(ConfigurationError, match="is not a PostgreSQL URL: use postgresql://"):
        Settings(archive_url="mysql://root@localhost/db")
    monkeypatch.setitem(sys.modules, "flowqueue.backend.postgres.archive", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'flowqueue\[postgres\]'"):
        open_archive(Settings(archive_url="postgresql://localhost/db"))
    assert open_archive(Settings()) is None


def test_a_note_appended_after_the_copy_sends_the_run_back_to_the_archiver(make_connections):
    connections = make_connections(completed_retention_seconds=60)
    store = store_of(connections)
    store.append_many(whole_run("noted", 1))
    assert archive_all(connections) == 1
    stream = store.commands.keys.run_stream("noted")
    assert store.client.pttl(stream) > 0  # its retention started
    store.append(ev("flow.rerun", "noted", step=None, rerun="another"))
    assert store.client.pttl(stream) == -1  # kept again until the archive has the note
    assert archive_all(connections) == 1
    assert store.client.pttl(stream) > 0
    assert store.archive is not None
    assert [e.kind for e in store.archive.read("noted")][-1] == "flow.rerun"


def test_an_unreadable_record_reads_as_the_same_placeholder_from_the_archive(connections):
    store = store_of(connections)
    events = whole_run("odd", 2)
    store.append_many(events[:2])
    store.client.xadd(store.commands.keys.run_stream("odd"), {"e": b"\xff not json"})
    store.client.xadd(store.commands.keys.run_stream("odd"), {"x": b"no body"})
    store.append_many(events[2:])
    before = [e.model_dump(mode="json") for e in store.read("odd")]
    assert [e["kind"] for e in before].count("record.unreadable") == 2
    archive_all(connections)
    wait_gone(store, "odd")
    after = [e.model_dump(mode="json") for e in store.read("odd")]
    for was, now in zip(before, after, strict=True):
        if was["kind"] == "record.unreadable":  # the same error; the key names the archive
            assert now["data"]["error"] == was["data"]["error"]
            assert now["data"]["key"] == "the archive's log of odd"
            was["data"]["key"] = now["data"]["key"]
        assert now == was
