"""Schedules: declaring one, its ticks through DST (a fake clock through spring-forward and
fall-back days in Berlin and New York), the missed policies, pause and resume, and the
atomic claim that fires each (schedule, tick) once across many pumps (threads and
processes on the suite's redis-server)."""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
import time_machine

from flowqueue.backend.redis.keys import Keys
from flowqueue.backend.redis.schedules import REDO_MS, RedisSchedules
from flowqueue.backend.redis.triggers import TriggerEvent, TriggerRegistry
from flowqueue.errors import FlowDefinitionError, InvalidInput
from flowqueue.model.ids import new_run_id
from flowqueue.model.schedules import (
    ScheduleSpec,
    due_ticks,
    latest_tick,
    next_fire_times,
)
from flowqueue.runtime._connections import Connections
from flowqueue.runtime._schedules import Firing, SchedulePump
from flowqueue.runtime._timers import MAX_BACKOFF_S, TimerPump, _Outage


def ms(text: str) -> int:
    """``"2026-03-29T01:00Z"`` -> epoch ms."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def local(tick: int, zone: str) -> str:
    """A tick as wall-clock time with its offset, in ``zone``."""
    return datetime.fromtimestamp(tick / 1000, ZoneInfo(zone)).isoformat(timespec="minutes")


def spec(cron: str, zone: str = "UTC", name: str = "nightly", **more: object) -> ScheduleSpec:
    return ScheduleSpec(name=name, flow="report", cron=cron, timezone=zone, **more)


@pytest.fixture
def backend(redis_server, settings) -> Iterator[RedisSchedules]:
    client = redis.Redis.from_url(redis_server.url)
    yield RedisSchedules(client, Keys(settings.key_prefix))
    client.close()


@pytest.fixture
def registry(redis_server, settings) -> Iterator[TriggerRegistry]:
    client = redis.Redis.from_url(redis_server.url)
    yield TriggerRegistry(client, Keys(settings.key_prefix))
    client.close()


# -- declaring -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"cron": "61 * * * *"}, "cron '61 * * * *' is not valid (Bad minute)"),
        ({"cron": "* * * *"}, "Wrong number of fields"),
        ({"cron": "0 0 30 2 *"}, "Bad day-of-month"),
        ({"timezone": "Mars/Olympus_Mons"}, "time zone 'Mars/Olympus_Mons' is unknown"),
        ({"timezone": "../../etc/passwd"}, "use an IANA name"),
        ({"name": "two words"}, "schedule name 'two words' is not valid"),
        ({"input": {"when": datetime(2026, 1, 1)}}, "its input.when is a datetime"),
        ({"input": {"n": float("nan")}}, "its input.n is nan"),
    ],
)
def test_a_bad_schedule_is_refused_when_it_is_declared(fields, says):
    declared = {"name": "nightly", "flow": "report", "cron": "0 3 * * *"} | fields
    with pytest.raises(FlowDefinitionError) as caught:
        ScheduleSpec(**declared)
    assert says in str(caught.value)
    assert caught.value.flow == "report"


def test_nicknames_six_fields_and_static_input_are_accepted():
    daily = spec("@daily", "Europe/Berlin", input={"region": "eu", "limit": 10})
    assert local(next_fire_times(daily, ms("2026-06-01T12:00Z"), 1)[0], "Europe/Berlin") == (
        "2026-06-02T00:00+02:00"
    )
    every_2s = spec("*/2 * * * * *")
    assert next_fire_times(every_2s, ms("2026-06-01T12:00:00.500Z"), 3) == [
        ms("2026-06-01T12:00:02Z"),
        ms("2026-06-01T12:00:04Z"),
        ms("2026-06-01T12:00:06Z"),
    ]
    assert ScheduleSpec.model_validate_json(daily.model_dump_json()) == daily


# -- DST, by the pure functions --------------------------------------------------------

# The clocks change in 2026: Berlin 03-29 01:00Z (02:00 -> 03:00) and 10-25 01:00Z
# (03:00 -> 02:00); New York 03-08 07:00Z (02:00 -> 03:00) and 11-01 06:00Z (02:00 -> 01:00).


@pytest.mark.parametrize(
    ("zone", "cron", "after", "expected"),
    [
        # 02:30 does not exist on the spring day: it fires once, at the end of the gap.
        (
            "Europe/Berlin",
            "30 2 * * *",
            "2026-03-28T12:00Z",
            ["2026-03-29T03:00+02:00", "2026-03-30T02:30+02:00"],
        ),
        (
            "America/New_York",
            "30 2 * * *",
            "2026-03-07T12:00Z",
            ["2026-03-08T03:00-04:00", "2026-03-09T02:30-04:00"],
        ),
        # 02:30 happens twice on Berlin's fall day (01:30 in New York): the first only.
        (
            "Europe/Berlin",
            "30 2 * * *",
            "2026-10-24T12:00Z",
            ["2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00"],
        ),
        (
            "America/New_York",
            "30 1 * * *",
            "2026-10-31T12:00Z",
            ["2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00"],
        ),
        # Hourly: the skipped hour's tick and the next hour's are one instant, so one tick.
        (
            "Europe/Berlin",
            "0 * * * *",
            "2026-03-28T23:30Z",
            ["2026-03-29T01:00+01:00", "2026-03-29T03:00+02:00", "2026-03-29T04:00+02:00"],
        ),
        (
            "America/New_York",
            "0 * * * *",
            "2026-03-08T05:30Z",
            ["2026-03-08T01:00-05:00", "2026-03-08T03:00-04:00", "2026-03-08T04:00-04:00"],
        ),
        # Hourly: the repeated hour fires on its first pass; the second pass fires nothing.
        (
            "Europe/Berlin",
            "0 * * * *",
            "2026-10-24T23:30Z",
            ["2026-10-25T02:00+02:00", "2026-10-25T03:00+01:00", "2026-10-25T04:00+01:00"],
        ),
        (
            "America/New_York",
            "0 * * * *",
            "2026-11-01T04:30Z",
            ["2026-11-01T01:00-04:00", "2026-11-01T02:00-05:00", "2026-11-01T03:00-05:00"],
        ),
        # Every 15 minutes: the whole gap is one tick at its end.
        (
            "Europe/Berlin",
            "*/15 * * * *",
            "2026-03-29T00:40Z",
            ["2026-03-29T01:45+01:00", "2026-03-29T03:00+02:00", "2026-03-29T03:15+02:00"],
        ),
    ],
)
def test_ticks_follow_the_dst_rule(zone, cron, after, expected):
    ticks = next_fire_times(spec(cron, zone), ms(after), len(expected))
    assert [local(tick, zone) for tick in ticks] == expected


def test_looking_from_inside_a_repeated_hour_neither_repeats_nor_loses_a_tick():
    hourly = spec("0 * * * *", "Europe/Berlin")
    second_pass = ms("2026-10-25T01:30Z")  # 02:30 CET, the repeat of 02:30 CEST
    assert local(latest_tick(hourly, second_pass), "Europe/Berlin") == "2026-10-25T02:00+02:00"
    assert [local(t, "Europe/Berlin") for t in next_fire_times(hourly, second_pass, 1)] == [
        "2026-10-25T03:00+01:00"
    ]
    quarterly = spec("*/15 * * * *", "America/New_York")
    inside = ms("2026-11-01T06:20Z")  # 01:20 EST: 01:30 and 01:45 EDT have fired already
    assert local(latest_tick(quarterly, inside), "America/New_York") == "2026-11-01T01:45-04:00"
    assert local(next_fire_times(quarterly, inside, 1)[0], "America/New_York") == (
        "2026-11-01T02:00-05:00"
    )


# -- missed ticks, by the pure function ------------------------------------------------


def test_due_ticks_apply_the_missed_policy():
    catch_up = spec("* * * * *")
    skip = spec("* * * * *", missed="skip")
    last, now = ms("2026-01-01T10:00Z"), ms("2026-01-01T10:10:30Z")  # ten ticks missed
    assert due_ticks(catch_up, last, now) == [ms("2026-01-01T10:10Z")]  # the latest, once
    assert due_ticks(skip, last, now) == []
    on_time = ms("2026-01-01T10:10:01Z")  # 10:10 is within the grace: it is on time
    assert due_ticks(catch_up, last, on_time) == [ms("2026-01-01T10:09Z"), ms("2026-01-01T10:10Z")]
    assert due_ticks(skip, last, on_time) == [ms("2026-01-01T10:10Z")]
    assert due_ticks(catch_up, ms("2026-01-01T10:10Z"), on_time) == []  # fired already
    assert due_ticks(catch_up, None, now) == []  # never fired: no catching up on the past
    assert due_ticks(catch_up, None, on_time) == [ms("2026-01-01T10:10Z")]


# -- a fake clock through whole days, against Redis ------------------------------------


def drive(pump: SchedulePump, start: str, end: str, step_s: float) -> None:
    """Run ``pump`` once per ``step_s`` of a fake clock from ``start`` to ``end``."""
    with time_machine.travel(
        datetime.fromisoformat(start.replace("Z", "+00:00")), tick=False
    ) as clock:
        while time.time() * 1000 <= ms(end):
            pump.pump_once()
            clock.shift(timedelta(seconds=step_s))


@pytest.mark.parametrize(
    ("zone", "start", "end", "expected"),
    [
        (
            "Europe/Berlin",
            "2026-03-28T22:45Z",
            "2026-03-29T03:15Z",
            {
                "at-0230": ["2026-03-29T03:00+02:00"],
                "at-0130": ["2026-03-29T01:30+01:00"],
                "hourly": [
                    "2026-03-29T00:00+01:00",
                    "2026-03-29T01:00+01:00",
                    "2026-03-29T03:00+02:00",
                    "2026-03-29T04:00+02:00",
                    "2026-03-29T05:00+02:00",
                ],
            },
        ),
        (
            "Europe/Berlin",
            "2026-10-24T21:45Z",
            "2026-10-25T03:15Z",
            {
                "at-0230": ["2026-10-25T02:30+02:00"],
                "at-0130": ["2026-10-25T01:30+02:00"],
                "hourly": [
                    "2026-10-25T00:00+02:00",
                    "2026-10-25T01:00+02:00",
                    "2026-10-25T02:00+02:00",
                    "2026-10-25T03:00+01:00",
                    "2026-10-25T04:00+01:00",
                ],
            },
        ),
        (
            "America/New_York",
            "2026-03-08T04:45Z",
            "2026-03-08T09:15Z",
            {
                "at-0230": ["2026-03-08T03:00-04:00"],
                "at-0130": ["2026-03-08T01:30-05:00"],
                "hourly": [
                    "2026-03-08T00:00-05:00",
                    "2026-03-08T01:00-05:00",
                    "2026-03-08T03:00-04:00",
                    "2026-03-08T04:00-04:00",
                    "2026-03-08T05:00-04:00",
                ],
            },
        ),
        (
            "America/New_York",
            "2026-11-01T03:45Z",
            "2026-11-01T09:15Z",
            {
                "at-0230": ["2026-11-01T02:30-05:00"],
                "at-0130": ["2026-11-01T01:30-04:00"],
                "hourly": [
                    "2026-11-01T00:00-04:00",
                    "2026-11-01T01:00-04:00",
                    "2026-11-01T02:00-05:00",
                    "2026-11-01T03:00-05:00",
                    "2026-11-01T04:00-05:00",
                ],
            },
        ),
    ],
    ids=["berlin-spring", "berlin-fall", "new-york-spring", "new-york-fall"],
)
def test_a_fake_clock_through_a_dst_day_fires_each_wall_time_once(
    backend, registry, zone, start, end, expected
):
    specs = [
        spec("30 2 * * *", zone, "at-0230"),
        spec("30 1 * * *", zone, "at-0130"),
        spec("0 * * * *", zone, "hourly"),
    ]
    started: list[Firing] = []
    drive(SchedulePump(specs, backend, started.append), start, end, step_s=60)
    fired = {
        name: [local(f.tick_ms, zone) for f in started if f.spec.name == name] for name in expected
    }
    assert fired == expected
    history = [event for _, event in registry.events(count=1_000)]
    assert [(e.name, e.tick_ms, e.run_id) for e in history] == [
        (f.spec.name, f.tick_ms, f.run_id) for f in started
    ]
    assert all(e.ts == datetime.fromtimestamp(e.tick_ms / 1000, UTC) for e in history)  # on time


def test_a_restarted_worker_catches_up_once_or_skips(backend):
    specs = [spec("* * * * *", name="catch-up"), spec("* * * * *", name="skip", missed="skip")]
    started: list[Firing] = []
    with time_machine.travel(
        datetime(2026, 5, 4, 10, 0, 0, 200_000, tzinfo=UTC), tick=False
    ) as clock:
        SchedulePump(specs, backend, started.append).pump_once()  # 10:00 fires for both
        clock.move_to(datetime(2026, 5, 4, 10, 10, 30, tzinfo=UTC))  # every worker was down
        restarted = SchedulePump(specs, backend, started.append)  # knows only what Redis does
        restarted.pump_once()
        clock.move_to(datetime(2026, 5, 4, 10, 11, 0, tzinfo=UTC))
        restarted.pump_once()
    assert [(f.spec.name, local(f.tick_ms, "UTC")) for f in started] == [
        ("catch-up", "2026-05-04T10:00+00:00"),
        ("skip", "2026-05-04T10:00+00:00"),
        ("catch-up", "2026-05-04T10:10+00:00"),  # the latest missed tick, 30 s late, once
        ("catch-up", "2026-05-04T10:11+00:00"),
        ("skip", "2026-05-04T10:11+00:00"),
    ]


def test_a_paused_schedule_fires_nothing_and_resumes_without_catching_up(backend, registry):
    hourly = spec("0 * * * *", name="hourly")
    started: list[Firing] = []
    pump = SchedulePump([hourly], backend, started.append)
    with time_machine.travel(datetime(2026, 5, 4, 9, 0, tzinfo=UTC), tick=False) as clock:
        pump.pump_once()  # 09:00 fires
        clock.move_to(datetime(2026, 5, 4, 9, 30, tzinfo=UTC))
        assert backend.pause("hourly", ms("2026-05-04T09:30Z")) is True
        assert backend.pause("hourly", ms("2026-05-04T09:31Z")) is False  # already: no event
        clock.move_to(datetime(2026, 5, 4, 10, 0, tzinfo=UTC))
        assert pump.pump_once() == []
        clock.move_to(datetime(2026, 5, 4, 11, 0, tzinfo=UTC))
        assert pump.pump_once() == []
        assert backend.states()["hourly"].paused_ms == ms("2026-05-04T09:30Z")
        assert backend.resume("hourly", ms("2026-05-04T11:20Z")) is True
        assert backend.resume("hourly", ms("2026-05-04T11:21Z")) is False
        clock.move_to(datetime(2026, 5, 4, 11, 25, tzinfo=UTC))
        assert pump.pump_once() == []  # 11:00 was paused: catch_up_one does not fire it
        clock.move_to(datetime(2026, 5, 4, 12, 0, tzinfo=UTC))
        pump.pump_once()
    assert [local(f.tick_ms, "UTC") for f in started] == [
        "2026-05-04T09:00+00:00",
        "2026-05-04T12:00+00:00",
    ]
    state = backend.states()["hourly"]
    assert (state.mark_ms, state.paused_ms) == (ms("2026-05-04T12:00Z"), None)
    kinds = [(event.kind, event.ts.isoformat()) for _, event in registry.events()]
    assert kinds == [
        ("trigger.fired", "2026-05-04T09:00:00+00:00"),
        ("trigger.paused", "2026-05-04T09:30:00+00:00"),
        ("trigger.resumed", "2026-05-04T11:20:00+00:00"),
        ("trigger.fired", "2026-05-04T12:00:00+00:00"),
    ]
    assert {(e.trigger, e.name) for _, e in registry.events()} == {("schedule", "hourly")}
    # newest first, a page at a time, as the API pages it
    newest = registry.history("hourly", count=3)
    assert [e.kind for _, e in newest] == ["trigger.fired", "trigger.resumed", "trigger.paused"]
    older = registry.history("hourly", before=newest[-1][0], count=3)
    assert [e.kind for _, e in older] == ["trigger.fired"]
    assert registry.history("other") == []
    ((last_id, last),) = registry.last_fired().values()
    assert (last_id, last.tick_ms) == (newest[0][0], ms("2026-05-04T12:00Z"))


# -- exactly once ----------------------------------------------------------------------


def fired_event(name: str, tick: int) -> TriggerEvent:
    return TriggerEvent(
        kind="trigger.fired",
        trigger="schedule",
        name=name,
        ts=datetime.now(UTC),
        flow="report",
        tick_ms=tick,
        run_id=new_run_id(),
    )


def test_the_mark_only_moves_forward(backend):
    outcomes = backend.claim([fired_event("a", 5_000), fired_event("a", 5_000)], 0)
    assert outcomes == ["won", "fired"]
    assert backend.claim([fired_event("a", 3_000), fired_event("a", 7_000)], 0) == ["fired", "won"]
    assert backend.marks(["a", "b"]) == {"a": 7_000, "b": None}


def test_a_start_owed_by_a_pump_that_died_is_made_by_the_next_one(backend):
    """A pump that wins a tick and dies before its run starts (here: its start is never
    run) leaves the start owed; after REDO_MS the next pump to pass starts it, with the
    same run id, once, and confirms it."""
    every_minute = [spec("* * * * *", name="minutely")]
    at = ms("2026-05-04T10:00:00.200Z")
    dead = SchedulePump(every_minute, backend, lambda f: None, submit=lambda call: None)
    dead._clock = lambda: at
    (won,) = dead.pump_once()
    started: list[Firing] = []

    def pump_at(when: int) -> SchedulePump:
        pump = SchedulePump(every_minute, backend, started.append, clock=lambda: when)
        pump._next = {"minutely": 2**63}  # no tick of its own due: only owed starts
        return pump

    pump_at(at + REDO_MS - 1).pump_once()
    assert started == []  # the first pump may still be starting it
    pump_at(at + REDO_MS).pump_once()
    assert [(f.spec.name, f.tick_ms, f.run_id) for f in started] == [
        ("minutely", won.tick_ms, won.run_id)
    ]
    pump_at(at + 3 * REDO_MS).pump_once()
    assert len(started) == 1  # confirmed: nobody starts it again
    assert backend.client.zcard(backend.keys.schedules_starting) == 0


def test_a_start_that_fails_stays_owed_and_one_that_cannot_succeed_is_dropped(backend):
    every_minute = [spec("* * * * *", name="minutely")]
    at = ms("2026-05-04T10:00:00.200Z")

    def refuse(firing: Firing) -> None:
        raise redis.ConnectionError("the broker is away")

    SchedulePump(every_minute, backend, refuse, clock=lambda: at).pump_once()
    assert backend.client.zcard(backend.keys.schedules_starting) == 1

    def invalid(firing: Firing) -> None:
        raise InvalidInput("the schedule's input does not fit the entry step")

    retry = SchedulePump(every_minute, backend, invalid, clock=lambda: at + REDO_MS)
    retry._next = {"minutely": 2**63}
    retry.pump_once()
    assert backend.client.zcard(backend.keys.schedules_starting) == 0


def test_many_threads_pumping_the_same_schedules_fire_each_tick_once(redis_server, settings):
    specs = [spec("* * * * * *", name=f"every-second-{i}") for i in range(20)]
    base, steps, pumps = ms("2026-05-04T10:00Z"), 30, 8
    started: list[Firing] = []
    lock = threading.Lock()
    barrier = threading.Barrier(pumps)

    def record(firing: Firing) -> None:
        with lock:
            started.append(firing)

    def worker() -> None:
        client = redis.Redis.from_url(redis_server.url)
        now = [base]
        pump = SchedulePump(
            specs, RedisSchedules(client, Keys(settings.key_prefix)), record, clock=lambda: now[0]
        )
        for step in range(steps):
            now[0] = base + step * 1_000 + random.randint(0, 400)  # clocks a little apart
            barrier.wait(timeout=30)
            pump.pump_once()
        client.close()

    threads = [threading.Thread(target=worker) for _ in range(pumps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    won = Counter((f.spec.name, f.tick_ms) for f in started)
    assert set(won.values()) == {1}
    # Every second fired (each clock was within the grace of it); the first pass saw no
    # mark, so it started a grace (2 s) back and fired the second before base too.
    assert set(won) == {(s.name, base + i * 1_000) for s in specs for i in range(-1, steps)}
    client = redis.Redis.from_url(redis_server.url)
    events = TriggerRegistry(client, Keys(settings.key_prefix)).events(count=10_000)
    client.close()
    assert Counter((e.name, e.tick_ms) for _, e in events) == won
    assert {e.run_id for _, e in events} == {f.run_id for f in started}


def _pump_for(url: str, prefix: str, seconds: float, names: list[str], out: object) -> None:
    """A process's pump on the real clock (a worker of its own)."""
    client = redis.Redis.from_url(url)
    won: list[tuple[str, int]] = []
    specs = [spec("* * * * * *", name=name) for name in names]
    pump = SchedulePump(specs, RedisSchedules(client, Keys(prefix)), lambda f: None)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        won += [(f.spec.name, f.tick_ms) for f in pump.pump_once()]
        time.sleep(0.05)
    out.put(won)  # type: ignore[attr-defined]


def test_processes_on_the_real_clock_fire_each_tick_once(redis_server, settings, registry):
    names = [f"per-second-{i}" for i in range(10)]
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    args = (redis_server.url, settings.key_prefix, 4.0, names, out)
    processes = [context.Process(target=_pump_for, args=args) for _ in range(3)]
    for process in processes:
        process.start()
    won = Counter(pair for _ in processes for pair in out.get(timeout=60))
    for process in processes:
        process.join(30)
    assert won
    assert set(won.values()) == {1}
    events = Counter((e.name, e.tick_ms) for _, e in registry.events(count=10_000))
    assert events == won
    for name in names:  # consecutive seconds: none lost between the processes
        ticks = sorted(tick for schedule, tick in won if schedule == name)
        assert ticks == list(range(ticks[0], ticks[-1] + 1, 1_000))


def test_the_history_stays_bounded(redis_server, settings):
    client = redis.Redis.from_url(redis_server.url)
    backend = RedisSchedules(client, Keys(settings.key_prefix), history_maxlen=100)
    registry = TriggerRegistry(client, Keys(settings.key_prefix))
    for batch in range(10):
        backend.claim([fired_event("busy", (batch * 100 + i) * 1_000) for i in range(100)], 0)
    assert client.xlen(Keys(settings.key_prefix).trigger_registry) <= 200  # MAXLEN ~: nodes
    first = registry.events(count=10)
    after = registry.events(after=first[-1][0], count=10)
    assert [e.tick_ms for _, e in first + after] == sorted(e.tick_ms for _, e in first + after)
    assert len({e.tick_ms for _, e in first + after}) == 20
    assert registry.events(names=["other"]) == []
    client.close()


def test_the_timer_pump_fires_schedules_on_its_thread(settings, backend):
    connections = Connections(settings)
    started: list[Firing] = []
    pump = SchedulePump([spec("* * * * * *", name="tick")], backend, started.append)
    timers = TimerPump(connections, lambda member, at: None, lambda: 1_000, lambda: pump)
    timers.start()
    try:
        deadline = time.monotonic() + 15
        while len(started) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        timers.stop()
        connections.close()
    assert len(started) >= 2
    assert started[1].tick_ms - started[0].tick_ms == 1_000


def test_history_pages_stop_at_either_end_of_the_id_space(registry):
    """Redis refuses ``(0-0`` as the top of a reverse range (and the greatest id as the
    bottom of a forward one): there is simply nothing beyond them."""
    entry = registry.fired("event", "edge.probe", "some-flow", "run-1")
    assert [e for e, _ in registry.history("edge.probe")] == [entry]
    assert registry.history("edge.probe", before="0-0") == []
    assert registry.history("edge.probe", before=entry) == []
    top = f"{2**64 - 1}-{2**64 - 1}"
    assert registry.events(after=top) == []
    assert [e for e, _ in registry.history("edge.probe", before=top)] == [entry]


def test_the_timer_pump_says_once_that_redis_is_away_and_once_that_it_is_back(caplog):
    outage = _Outage()
    with caplog.at_level("WARNING", logger="flowqueue.runtime._timers"):
        for _ in range(50):
            outage.pass_ended(["timer pump: Error 111 connecting"])
        assert outage.backoff(0.1) == MAX_BACKOFF_S
        outage.pass_ended([])
        outage.pass_ended([])
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "timer pump: Error 111 connecting; retrying until it works (timers wait in Redis)",
        "timer pump: working again after 50 failed passes",
    ]
    assert outage.backoff(0.1) == 0.1
