"""A new run's entry steps are sent before its start is recorded, each carrying the start
(``StartNote``): the starter records it next, or the first entry step's claim does if it
gets there first (or the starter died); exactly one flow.started either way."""

from __future__ import annotations

from typing import Any

import redis

from flowqueue import get_run, start_flow
from flowqueue.model.events import EventKind, encode_body
from flowqueue.model.header import StartNote
from flowqueue.model.timers import now_ms

ORDER = {"order_id": "o-1", "items": [{"sku": "x", "quantity": 1}], "card": "4000123412341234"}


def note_of(app: Any, run: str, made_ms: int) -> StartNote:
    """The start note ``start_flow`` would put on ``run``'s entry step."""
    started = app.flowqueue.orchestrator._started(
        app.flowqueue.flows.flow("order"), ORDER, run, {"kind": "manual"}
    )
    body = encode_body(started, 1 << 20).decode()
    return StartNote(body=body, entries=["validate"], made_ms=made_ms)


def kinds(app: Any, run: str) -> list[str]:
    return [e.kind for e in app.flowqueue.store.read(run)]


def test_a_run_is_recorded_when_start_flow_returns(make_app, redis_client: redis.Redis):
    app = make_app(eager=False)  # no worker: the entry steps wait in the broker
    runs = [start_flow("order", ORDER, app=app) for _ in range(20)]
    keys = app.flowqueue.keys  # another connection sees them at once
    assert all(redis_client.exists(keys.run_stream(run)) for run in runs)
    assert {get_run(run, app=app).status for run in runs} == {"running"}
    assert all(kinds(app, run) == [EventKind.FLOW_STARTED] for run in runs)
    assert app.flowqueue.coordinator.step_statuses(runs[0]) == {"validate": "queued"}


def test_an_entry_step_that_gets_there_first_starts_its_run(make_app):
    app = make_app(eager=True)  # the entry step runs inside apply_async, before the record
    run = start_flow("order", ORDER, app=app)
    log = kinds(app, run)
    assert log[0] == EventKind.FLOW_STARTED
    assert log.count(EventKind.FLOW_STARTED) == 1
    assert log[-1] == EventKind.FLOW_COMPLETED  # the starter's record came second: nothing


def test_a_starter_that_died_after_sending_loses_nothing(make_app):
    app = make_app(eager=True)
    fq = app.flowqueue
    graph = fq.flows.flow("order")
    run = "01a23438-3282-74d2-9ed6-f6f50a31aaaa"
    note = note_of(app, run, now_ms())
    # Its entry step was sent, then it died: nothing but the message knows of the run.
    fq.orchestrator.send(
        fq.orchestrator.message(
            run, "order", graph.step("validate"), ORDER, new_run=True, start=note
        )
    )
    assert get_run(run, app=app).status == "completed"
    assert kinds(app, run).count(EventKind.FLOW_STARTED) == 1


def test_a_start_made_longer_ago_than_the_shortest_retention_is_not_recorded(make_app):
    # Its run may have ended and expired meanwhile: a late message must not start it again.
    app = make_app(eager=True, completed_retention_seconds=1)
    fq = app.flowqueue
    graph = fq.flows.flow("order")
    run = "01a23438-3282-74d2-9ed6-f6f50a31bbbb"
    note = note_of(app, run, now_ms() - 2000)
    fq.orchestrator.send(
        fq.orchestrator.message(
            run, "order", graph.step("validate"), ORDER, new_run=True, start=note
        )
    )
    assert fq.store.read(run) == []
    assert not fq.coordinator.client.keys(f"{fq.keys.prefix}:run:{{{run}}}*")
