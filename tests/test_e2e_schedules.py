"""Schedules end to end, on real ``celery`` console-script workers and a real Redis: three
workers fire 100 every-second schedules for 60 s, each (schedule, tick) exactly once
(counted in the trigger registry); killing every worker for 5+ ticks and restarting
fires one late catch-up per ``catch_up_one`` schedule and none for ``skip``; a firing's
run says in flow.started that the schedule started it; the example report is declared
and runs. Declaring: only entry steps, names unique in the app."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest

import tests.flows  # noqa: F401 - imported here without the schedules the workers get
from flowqueue import Schedule, start_flow
from flowqueue.authoring.flows import FlowRegistry, StepDef
from flowqueue.backend.redis.triggers import TriggerEvent
from flowqueue.errors import FlowDefinitionError
from flowqueue.model.ids import new_run_id
from flowqueue.model.schedules import GRACE_MS
from tests.helpers import fake_step
from tests.worker_harness import Cluster

pytestmark = pytest.mark.e2e


@pytest.fixture
def make_cluster(redis_server, tmp_path, monkeypatch) -> Iterator:
    made: list[Cluster] = []

    def build(catch_up: int, skip: int = 0) -> Cluster:
        # The workers' tests.flows declares this many every-second schedules (env at import).
        monkeypatch.setenv("FQTEST_SCHEDULES", str(catch_up))
        monkeypatch.setenv("FQTEST_SKIP_SCHEDULES", str(skip))
        cluster = Cluster(redis_server.url, tmp_path)
        made.append(cluster)
        return cluster

    yield build
    for cluster in made:
        cluster.close()


def fired(cluster: Cluster) -> list[TriggerEvent]:
    events = cluster.fq.trigger_registry.events(count=1_000_000)
    return [e for _, e in events if e.kind == "trigger.fired" and e.trigger == "schedule"]


@pytest.mark.slow
def test_three_workers_fire_100_schedules_each_tick_exactly_once_for_60_s(make_cluster):
    cluster = make_cluster(100)
    for _ in range(3):
        cluster.start_worker(concurrency=2)
    start_ms = int(time.time() * 1000) + 1_000
    time.sleep(61)
    end_ms = int(time.time() * 1000) - 1_000
    events = fired(cluster)
    per_tick = Counter((e.name, e.tick_ms) for e in events)
    assert set(per_tick.values()) == {1}  # no (schedule, tick) fired twice
    assert len({e.run_id for e in events}) == len(events)  # one run id per firing
    window = {(name, tick) for name, tick in per_tick if start_ms <= tick <= end_ms}
    first = start_ms // 1000 * 1000 + 1000
    expected = {(f"tick-{i}", tick) for i in range(100) for tick in range(first, end_ms + 1, 1000)}
    assert window == expected  # every tick of the 60 s fired: none lost between workers
    assert len(expected) >= 100 * 58
    # The runs started, each saying what started it.
    sample = [e for e in events if (e.name, e.tick_ms) in expected][:: len(expected) // 20]
    logs = cluster.wait_all([e.run_id for e in sample], timeout=120)
    for event in sample:
        log = logs[event.run_id]
        assert log[0].data["trigger"] == {
            "kind": "schedule",
            "name": event.name,
            "tick": event.tick_ms,
        }
        assert log[0].data["input"] == {"i": int(event.name.removeprefix("tick-"))}
        assert log[-1].kind == "flow.completed"


def test_killing_every_worker_for_5_ticks_catches_up_once(make_cluster):
    cluster = make_cluster(3, skip=1)
    names = ["tick-0", "tick-1", "tick-2", "skip-0"]
    workers = [cluster.start_worker(concurrency=1) for _ in range(3)]

    def ticks_of(name: str) -> list[int]:
        return sorted(e.tick_ms for e in fired(cluster) if e.name == name)

    cluster.wait_for(lambda: all(len(ticks_of(n)) >= 3 for n in names), "firings", 30)
    for worker in workers:
        worker.kill()  # SIGKILL, the pools too
    killed_ms = int(time.time() * 1000)
    before = {name: ticks_of(name) for name in names}
    # No worker for 5 ticks past the grace (ticks within it still fire on time, late).
    time.sleep(5 + GRACE_MS / 1000 + 1)
    restarted_ms = int(time.time() * 1000)
    for _ in range(3):
        cluster.start_worker(concurrency=1)
    last = {name: before[name][-1] for name in names}
    cluster.wait_for(lambda: all(len(ticks_of(n)) >= len(before[n]) + 5 for n in names), "", 60)
    events = fired(cluster)
    assert set(Counter((e.name, e.tick_ms) for e in events).values()) == {1}
    late: dict[str, list[TriggerEvent]] = defaultdict(list)
    for event in events:
        if event.tick_ms > last[event.name]:
            assert event.tick_ms > killed_ms - 1_000  # no tick before the kill was lost
            lateness = int(event.ts.timestamp() * 1000) - event.tick_ms
            if lateness > GRACE_MS:
                late[event.name].append(event)
    for name in ["tick-0", "tick-1", "tick-2"]:
        (catch_up,) = late[name]  # catch_up_one: exactly one late firing
        assert catch_up.tick_ms >= restarted_ms - 3_000  # the latest missed tick
        after = ticks_of(name)[len(before[name]) :]
        assert after[0] == catch_up.tick_ms
        assert after[0] - last[name] >= 5_000  # the ticks in between never fired
        normal = after[1:]
        assert normal == list(range(normal[0], normal[-1] + 1, 1000))  # then every second
        assert normal[0] - catch_up.tick_ms >= 1000
    assert late["skip-0"] == []  # skip: nothing late
    skipped = ticks_of("skip-0")[len(before["skip-0"]) :]
    assert skipped[0] - last["skip-0"] >= 5_000
    assert skipped == list(range(skipped[0], skipped[-1] + 1, 1000))


def test_a_firing_whose_worker_died_before_starting_its_run_runs_once(make_cluster):
    """A worker that won a tick and died before its run started (``lost``: nothing of the
    run exists) or before its entry step was sent (``half``: the run is queued, nothing
    in the broker) leaves the start owed; a live worker's pump starts each, once."""
    cluster = make_cluster(1)
    fq, client = cluster.fq, cluster.fq.coordinator.client
    tick = (int(time.time()) - 60) * 1000
    lost, half = new_run_id(), new_run_id()
    graph = fq.flows.flow("tick")
    trigger = {"kind": "schedule", "name": "tick-0", "tick": tick - 1_000}
    fq.coordinator.start_run(
        fq.orchestrator._started(graph, {"i": 0}, half, trigger),
        [entry.name for entry in graph.entry_steps],
    )
    owed = {f"{tick} {lost} tick-0": 0, f"{tick - 1_000} {half} tick-0": 0}
    client.zadd(fq.keys.schedules_starting, owed)
    cluster.start_worker(concurrency=1)
    logs = cluster.wait_all([lost, half], timeout=60)
    for run_id, at in ((lost, tick), (half, tick - 1_000)):
        log = logs[run_id]
        assert log[0].data["trigger"] == {"kind": "schedule", "name": "tick-0", "tick": at}
        assert [e.kind for e in log].count("step.completed") == 1
        assert log[-1].kind == "flow.completed"
    cluster.wait_for(
        lambda: all(client.zscore(fq.keys.schedules_starting, m) is None for m in owed),
        "the owed starts confirmed",
    )


def test_the_example_report_is_declared_and_runs(cluster):
    spec = cluster.fq.flows.schedules["daily-report"]
    assert (spec.flow, spec.cron, spec.timezone, spec.missed) == (
        "daily_report",
        "30 6 * * *",
        "Europe/Berlin",
        "catch_up_one",
    )
    run = start_flow("daily_report", spec.input, app=cluster.app)  # a manual start
    log = cluster.wait_terminal(run)
    assert log[0].data["trigger"] == {"kind": "manual"}
    assert log[-1].kind == "flow.completed"


# -- declaring -------------------------------------------------------------------------


def test_only_entry_steps_take_a_schedule_and_names_are_unique_in_the_app():
    every = Schedule("*/5 * * * *", timezone="Europe/Berlin", name="every-five")
    with pytest.raises(FlowDefinitionError, match="not an entry step"):
        StepDef.from_task(
            fake_step("t.not_entry", entry=False, subscribes=["x"], schedules=[every])
        )
    one = StepDef.from_task(fake_step("t.one", schedules=[every], flow="one"))
    two = StepDef.from_task(fake_step("t.two", schedules=[every], flow="two"))
    with pytest.raises(FlowDefinitionError) as caught:
        FlowRegistry([one, two])
    message = str(caught.value)
    assert "'every-five' is declared twice" in message
    assert "'t.one'" in message
    assert "'t.two'" in message
    with pytest.raises(FlowDefinitionError, match=r"takes flowqueue\.Schedule"):
        StepDef.from_task(fake_step("t.bad", schedules=["*/5 * * * *"]))
    # one declaration on a step of two flows: a schedule per flow, named by default after it
    both = StepDef.from_task(fake_step("t.both", schedules=[Schedule("@hourly")], flow=["a", "b"]))
    specs = FlowRegistry([both]).schedules
    assert {(s.name, s.flow) for s in specs.values()} == {("a", "a"), ("b", "b")}
    with pytest.raises(FlowDefinitionError, match="is not valid"):
        Schedule("61 * * * *")
    with pytest.raises(FlowDefinitionError, match="time zone"):
        Schedule("@daily", timezone="Mars/Olympus")
