"""The EventStore contract, on a real Redis (``memory://`` runs this same store on a
redis-server of its own)."""

from __future__ import annotations

import asyncio
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from flowqueue.backend.store import EventStore
from flowqueue.errors import InvalidEvent, MixedRunsError, NonJsonPayload, PayloadTooLarge
from flowqueue.model.events import NewEvent
from flowqueue.model.ids import parse_stream_id

from .helpers import ev, logs


def ids_increase(events: list) -> bool:
    sids = [parse_stream_id(e.id) for e in events]
    return all(a < b for a, b in itertools.pairwise(sids))


def test_append_assigns_increasing_ids_and_timestamps(store: EventStore):
    first = store.append(ev("flow.started", input={"x": 1}, step=None))
    rest = store.append_many(logs("run-1", 3))
    assert first.kind == "flow.started"
    assert first.data == {"input": {"x": 1}}
    assert ids_increase([first, *rest])
    assert all(e.ts.tzinfo is not None for e in [first, *rest])
    assert [e.model_dump() for e in store.read("run-1")] == [e.model_dump() for e in [first, *rest]]
    assert store.count("run-1") == 4
    assert store.count("no-such-run") == 0
    assert store.read("no-such-run") == []


def test_event_json_roundtrip(store: EventStore):
    stored = store.append(ev("log", msg="hi"))
    as_json = stored.model_dump(mode="json")
    assert as_json["ts"].endswith("Z")
    assert len(as_json["ts"]) == len("2024-01-01T00:00:00.000Z")
    assert as_json["id"] == stored.id


def test_ten_thousand_events_whole_and_in_pages(store: EventStore):
    appended = []
    for start in range(0, 10_000, 1_000):
        appended += store.append_many(logs("big", 1_000, start))
    ids = [e.id for e in appended]
    assert ids_increase(appended)

    assert [e.id for e in store.read("big")] == ids
    assert store.count("big") == 10_000

    paged, cursor = [], None
    while page := store.read("big", after=cursor, limit=333):
        paged += page
        cursor = page[-1].id
    assert [e.id for e in paged] == ids
    assert [e.data["i"] for e in paged] == list(range(10_000))

    backwards, cursor = [], None
    while page := store.read_reverse("big", before=cursor, limit=777):
        backwards += page
        cursor = page[-1].id
    assert [e.id for e in backwards] == ids[::-1]

    assert [e.id for e in store.read("big", after=ids[4_999], limit=2)] == ids[5_000:5_002]
    assert [e.id for e in store.read_reverse("big", before=ids[5_000], limit=2)] == [
        ids[4_999],
        ids[4_998],
    ]
    assert store.read("big", limit=0) == []


def test_concurrent_appends_keep_order_and_lose_nothing(store: EventStore):
    per_thread = 500

    def writer(t: int) -> None:
        for i in range(per_thread):
            store.append(ev("log", "shared", writer=t, i=i))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))
    events = store.read("shared")
    assert len(events) == 4 * per_thread
    assert ids_increase(events)
    for t in range(4):
        assert [e.data["i"] for e in events if e.data["writer"] == t] == list(range(per_thread))


def test_subscriber_started_during_appends_gets_all_once_in_order(store: EventStore):
    total, received = 1_000, []
    started = threading.Event()

    def writer() -> None:
        started.wait()
        for i in range(total):
            store.append(ev("log", "live", i=i))

    thread = threading.Thread(target=writer)
    thread.start()
    store.append(ev("log", "live", i=-1))  # something to backfill
    stream = store.subscribe("live")
    for event in stream:
        if not started.is_set():
            started.set()  # appends start as the subscriber switches from backfill to live
        received.append(event)
        if event.data["i"] == total - 1:
            break
    stream.close()  # type: ignore[attr-defined]
    thread.join()
    assert [e.data["i"] for e in received] == list(range(-1, total))
    assert ids_increase(received)


def test_live_subscriber_gets_every_event_of_appended_batches(store: EventStore):
    # On Redis a batch travels as one Pub/Sub message; each event must come out of it.
    stream = store.subscribe("batches")
    store.append(ev("log", "batches", i=-1))
    assert next(stream).data["i"] == -1  # now live
    for start in range(0, 300, 100):
        store.append_many(logs("batches", 100, start))
    received = [next(stream) for _ in range(300)]
    stream.close()  # type: ignore[attr-defined]
    assert [e.data["i"] for e in received] == list(range(300))
    assert received == store.read("batches")[1:]


def test_subscriber_resuming_after_an_id_gets_exactly_what_follows(store: EventStore):
    appended = store.append_many(logs("resume", 50))
    cut = appended[19].id
    store.append_many(logs("resume", 10, start=50))
    got = []
    stream = store.subscribe("resume", after=cut)
    for event in stream:
        got.append(event)
        if event.data["i"] == 59:
            break
    stream.close()  # type: ignore[attr-defined]
    assert [e.data["i"] for e in got] == list(range(20, 60))


def test_slow_subscriber_with_tiny_buffer_still_gets_everything(make_store):
    store = make_store(subscriber_buffer=4)

    async def scenario() -> list[int]:
        aio = store.aio
        got: list[int] = []
        stream = aio.subscribe("slow")
        first = await anext(stream)  # attached and backfilled
        got.append(first.data["i"])
        await aio.append_many(logs("slow", 200, start=1))  # overflows the 4-slot buffer
        async for event in stream:
            got.append(event.data["i"])
            if event.data["i"] == 200:
                break
        await stream.aclose()
        return got

    store.append(ev("log", "slow", i=0))
    assert asyncio.run(_with_aclose(store, scenario())) == list(range(201))


async def _with_aclose(store: EventStore, coro):  # the async store is bound to this loop
    try:
        return await coro
    finally:
        await store.aio.aclose()


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (lambda: ev("no.such.kind"), InvalidEvent),
        (lambda: ev("log", payload={1, 2}), NonJsonPayload),
        (lambda: ev("log", value=float("inf")), NonJsonPayload),
        (lambda: NewEvent(kind="log", run_id="r{1}", flow="f"), InvalidEvent),
        (lambda: NewEvent(kind="log", run_id="valid", flow="f", data="text"), NonJsonPayload),
    ],
)
def test_invalid_events_are_rejected_before_anything_is_written(store, bad, error):
    store.append(ev("log", "run-1", i=0))
    with pytest.raises(error):
        store.append(bad())
    assert [e.data for e in store.read("run-1")] == [{"i": 0}]


def test_oversized_and_mixed_batches_write_nothing(store: EventStore):
    store.append(ev("log", "run-1", i=0))
    limit = store.settings.max_payload_bytes  # type: ignore[attr-defined]
    with pytest.raises(PayloadTooLarge, match="FLOWQUEUE_MAX_PAYLOAD_BYTES"):
        store.append_many([ev("log", "run-1", i=1), ev("log", "run-1", blob="x" * limit)])
    with pytest.raises(MixedRunsError, match="once per run"):
        store.append_many([ev("log", "run-1", i=1), ev("log", "run-2", i=2)])
    with pytest.raises(InvalidEvent, match="not an event id"):
        store.read("run-1", after="yesterday")
    assert [e.data for e in store.read("run-1")] == [{"i": 0}]
    assert store.count("run-2") == 0
    assert store.append_many([]) == []


def test_list_runs_newest_first_with_cursor_and_status(store: EventStore):
    runs = [f"run-{i:02d}" for i in range(7)]
    for run in runs:
        store.append(NewEvent(kind="flow.started", run_id=run, flow="listing"))
    store.append(NewEvent(kind="flow.completed", run_id="run-03", flow="listing"))
    store.append(NewEvent(kind="flow.failed", run_id="run-04", flow="listing"))

    first = store.list_runs("listing", limit=3)
    assert [r.run_id for r in first] == ["run-06", "run-05", "run-04"]
    second = store.list_runs("listing", limit=3, before=first[-1].run_id)
    assert [r.run_id for r in second] == ["run-03", "run-02", "run-01"]
    last = store.list_runs("listing", limit=3, before=second[-1].run_id)
    assert [r.run_id for r in last] == ["run-00"]

    by_id = {r.run_id: r for r in first + second + last}
    assert by_id["run-03"].status == "completed"
    assert by_id["run-03"].ended_at is not None
    assert by_id["run-04"].status == "failed"
    assert by_id["run-00"].status == "running"
    assert by_id["run-00"].ended_at is None
    assert by_id["run-00"].flow == "listing"
    assert store.list_runs("other-flow") == []
    with pytest.raises(InvalidEvent, match="previous page"):
        store.list_runs("listing", before="unknown-run")


def test_async_api_matches_sync(store: EventStore):
    async def scenario() -> None:
        aio = store.aio
        one = await aio.append(ev("flow.started", "async-run", step=None))
        many = await aio.append_many(logs("async-run", 5))
        assert ids_increase([one, *many])
        assert [e.id for e in await aio.read("async-run", after=one.id)] == [e.id for e in many]
        assert [e.id for e in await aio.read_reverse("async-run", limit=2)] == [
            many[-1].id,
            many[-2].id,
        ]
        assert await aio.count("async-run") == 6
        assert [r.run_id for r in await aio.list_runs("flow-a")] == ["async-run"]

        got = []
        stream = aio.subscribe("async-run", after=many[2].id)
        writer = asyncio.create_task(aio.append_many(logs("async-run", 3, start=5)))
        async for event in stream:
            got.append(event.data["i"])
            if event.data["i"] == 7:
                break
        await stream.aclose()
        await writer
        assert got == [3, 4, 5, 6, 7]

    asyncio.run(_with_aclose(store, scenario()))
    assert store.count("async-run") == 9  # the sync view sees async writes


def test_many_async_subscribers_across_runs(store: EventStore):
    async def scenario() -> None:
        aio = store.aio

        async def follow(run: str) -> list[int]:
            got = []
            async for event in aio.subscribe(run):
                got.append(event.data["i"])
                if event.data["i"] == 19:
                    return got
            return got

        tasks = [asyncio.create_task(follow(f"fan-{n % 5}")) for n in range(40)]
        await asyncio.sleep(0.05)
        for i in range(20):
            for run in range(5):
                await aio.append(ev("log", f"fan-{run}", i=i))
        results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=30)
        assert all(r == list(range(20)) for r in results)

    asyncio.run(_with_aclose(store, scenario()))


def lifecycle(run: str) -> list[NewEvent]:
    return [ev("flow.started", run, step=None), ev("step.started", run), ev("log", run)]


def test_feed_holds_lifecycle_events_of_every_run_in_order(store: EventStore):
    for run in ("feed-a", "feed-b", "feed-a"):
        store.append_many(lifecycle(run))
    feed = store.read_feed()
    assert [(f.event.run_id, f.event.kind) for f in feed] == [
        ("feed-a", "flow.started"),
        ("feed-a", "step.started"),
        ("feed-b", "flow.started"),
        ("feed-b", "step.started"),
        ("feed-a", "flow.started"),
        ("feed-a", "step.started"),
    ]
    assert ids_increase(feed)
    assert feed[2].event == store.read("feed-b")[0]  # the run's own id and record
    assert store.read_feed(after=feed[3].id) == feed[4:]
    assert store.read_feed(after=feed[0].id, limit=2) == feed[1:3]


def test_feed_subscriber_gets_backfill_then_live_once_each(store: EventStore):
    store.append_many(lifecycle("before"))

    async def scenario() -> list[str]:
        aio = store.aio
        first = (await aio.read_feed())[0]
        stream = aio.subscribe_feed(after=first.id)
        got: list[str] = []

        async def writer() -> None:
            for n in range(20):
                await aio.append_many(lifecycle(f"live-{n}"))

        task = asyncio.create_task(writer())
        async for entry in stream:
            got.append(entry.id)
            if len(got) == 1 + 40:
                break
        await task
        await stream.aclose()
        assert got == [f.id for f in await aio.read_feed(after=first.id)]
        return got

    got = asyncio.run(_with_aclose(store, scenario()))
    assert len(got) == 41
    assert [parse_stream_id(i) for i in got] == sorted(parse_stream_id(i) for i in got)


def test_flow_stats_count_runs_by_status_and_awaiting_steps(store: EventStore):
    store.append_many([ev("flow.started", "a", step=None), ev("flow.completed", "a", step=None)])
    store.append_many([ev("flow.started", "b", step=None), ev("step.await.time", "b")])
    store.append(ev("step.await.event", "b", step="t"))
    store.append_many([ev("flow.started", "c", step=None), ev("step.await.trigger", "c")])
    store.append_many([ev("step.resumed", "c"), ev("step.await.time", "c")])
    store.append(ev("flow.failed", "c", step=None))  # ends c with one step still awaiting
    stats = store.flow_stats("flow-a")
    assert stats.model_dump(
        exclude={"step_ms_buckets", "step_ms_sum", "step_ms_p50", "step_ms_p95"}
    ) == {
        "running": 1,
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
        "awaiting": 2,
        "events": 10,
    }
    store.append(ev("step.resumed", "b", step="t"))
    store.append(ev("flow.cancelled", "b", step=None))
    store.append(ev("step.resumed", "b"))  # after the end: not counted again
    assert store.flow_stats("flow-a").model_dump(
        exclude={"step_ms_buckets", "step_ms_sum", "step_ms_p50", "step_ms_p95"}
    ) == {
        "running": 0,
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
        "awaiting": 0,
        "events": 13,
    }
    assert store.flow_stats("no-such-flow").running == 0
    assert asyncio.run(_with_aclose(store, store.aio.flow_stats("flow-a"))).cancelled == 1


def test_flow_stats_keep_a_histogram_of_step_durations(store: EventStore):
    store.append(ev("step.completed", "h", duration_ms=7))
    store.append(ev("step.failed", "h", duration_ms=300, will_retry=True))
    store.append(ev("step.completed", "h", duration_ms=90_000))
    store.append(ev("step.completed", "h"))  # no duration: not counted
    stats = store.flow_stats("flow-a")
    assert stats.step_ms_buckets == {"10": 1, "500": 1, "inf": 1}
    assert stats.step_ms_sum == 90_307


def test_bad_cursor_and_limit_errors_say_what_to_pass(store: EventStore):
    # Found by `make mutate`: the messages could be emptied and no test noticed.
    store.append(ev("log", "run-1", i=0))
    with pytest.raises(InvalidEvent, match=r"after='yesterday' is not an event id; pass an id"):
        store.read("run-1", after="yesterday")
    with pytest.raises(InvalidEvent, match=r"taken from an event\.$"):
        store.read("run-1", after="yesterday")
    with pytest.raises(InvalidEvent, match=r"limit must be >= 0 \(or None for all\), got -1"):
        store.read("run-1", limit=-1)
