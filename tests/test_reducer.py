"""The reducer: examples for each kind, and properties over generated logs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flowqueue.model.events import Event, NewEvent
from flowqueue.model.reducer import RunStatus, StepStatus, apply, reduce, state_at
from flowqueue.model.validation import INT_MAX, INT_MIN


def log_of(*specs: tuple[str, str | None, dict[str, Any]], start_ms: int = 1_700_000_000_000):
    """Stored events with ids 1 ms apart (so durations are exact)."""
    return [
        Event.stamped(
            NewEvent(kind=kind, run_id="run-1", flow="order", step=step, data=data),
            f"{start_ms + i}-0",
        )
        for i, (kind, step, data) in enumerate(specs)
    ]


HAPPY = log_of(
    ("flow.started", None, {"input": {"order_id": "o1"}}),
    ("step.started", "validate", {"attempt": 1, "task_id": "t1", "worker": "w1"}),
    ("log", "validate", {"level": "info", "msg": "checking", "fields": {"n": 1}}),
    ("state.set", "validate", {"key": "total", "value": 42}),
    ("state.set", "validate", {"key": "tmp", "value": [1]}),
    ("state.delete", "validate", {"key": "tmp"}),
    ("emit", "validate", {"name": "order.validated", "payload": {"ok": True}}),
    ("step.completed", "validate", {"result": {"ok": True}}),
    ("step.started", "ship", {"attempt": 1}),
    ("step.failed", "ship", {"error": {"type": "IOError", "message": "down"},
                             "will_retry": True, "next_retry_at": "soon"}),
    ("step.retry", "ship", {"attempt": 2}),
    ("step.started", "ship", {"attempt": 2}),
    ("step.await.trigger", "ship", {"key": "ship:0", "trigger_id": "tr-1", "info": {"q": 1}}),
    ("step.resumed", "ship", {"key": "ship:0", "result": {"approved": True}}),
    ("step.started", "ship", {"attempt": 2}),
    ("step.completed", "ship", {"result": "shipped", "duration_ms": 7}),
    ("flow.completed", None, {"result": "done"}),
)  # fmt: skip


def test_happy_path_state():
    state = reduce(HAPPY)
    assert state.run_id == "run-1"
    assert state.flow == "order"
    assert state.status is RunStatus.COMPLETED
    assert state.terminal
    assert state.input == {"order_id": "o1"}
    assert state.result == "done"
    assert state.duration_ms == len(HAPPY) - 1
    assert state.ended_at - state.started_at == timedelta(milliseconds=len(HAPPY) - 1)
    assert state.state == {"total": 42}
    assert [(e.name, e.payload, e.step) for e in state.emitted] == [
        ("order.validated", {"ok": True}, "validate")
    ]
    assert [(line.level, line.msg, line.fields) for line in state.logs] == [
        ("info", "checking", {"n": 1})
    ]
    validate, ship = state.steps["validate"], state.steps["ship"]
    assert validate.status is StepStatus.COMPLETED
    assert validate.result == {"ok": True}
    assert validate.attempts == 1
    assert validate.duration_ms == 6
    assert (validate.task_id, validate.worker) == ("t1", "w1")
    assert ship.status is StepStatus.COMPLETED
    assert ship.attempts == 2
    assert ship.duration_ms == 7
    assert ship.error is None
    assert state.awaits == {}
    assert state.event_count == len(HAPPY)
    assert state.last_event_id == HAPPY[-1].id


def test_intermediate_states_show_retry_and_await():
    retrying = state_at(HAPPY, HAPPY[9].id).steps["ship"]
    assert retrying.status is StepStatus.RETRYING
    assert retrying.will_retry
    assert retrying.error is not None
    assert retrying.error.type == "IOError"
    assert retrying.next_retry_at == "soon"

    awaiting = state_at(HAPPY, HAPPY[12].id)
    ship = awaiting.steps["ship"]
    assert ship.status is StepStatus.AWAITING
    assert ship.awaiting is not None
    assert ship.awaiting.kind == "trigger"
    assert ship.awaiting.trigger_id == "tr-1"
    assert list(awaiting.awaits) == ["ship:0"]
    assert awaiting.status is RunStatus.RUNNING

    resumed = state_at(HAPPY, HAPPY[13].id)
    assert resumed.awaits == {}
    assert resumed.steps["ship"].status is StepStatus.QUEUED


def test_time_travel_by_timestamp_matches_by_id():
    for index, event in enumerate(HAPPY):
        assert state_at(HAPPY, event.ts) == state_at(HAPPY, event.id) == reduce(HAPPY[: index + 1])
    assert state_at(HAPPY, HAPPY[0].ts - timedelta(seconds=1)).status is RunStatus.PENDING


def test_final_failure_and_first_terminal_wins():
    events = log_of(
        ("flow.started", None, {}),
        ("step.started", "charge", {}),
        ("step.failed", "charge", {"error": {"type": "CardDeclined", "message": "no"},
                                   "will_retry": False}),
        ("flow.failed", None, {"error": {"type": "CardDeclined", "message": "no"}}),
        ("flow.completed", None, {}),
    )  # fmt: skip
    state = reduce(events)
    assert state.status is RunStatus.FAILED
    assert state.error is not None
    assert state.error.type == "CardDeclined"
    charge = state.steps["charge"]
    assert charge.status is StepStatus.FAILED
    assert charge.attempts == 1


def test_cancel_clears_awaits_and_stops_open_steps():
    events = log_of(
        ("flow.started", None, {}),
        ("step.started", "wait", {"attempt": 1}),
        ("step.await.event", "wait", {"key": "wait:0", "name": "paid", "match": {"id": 1}}),
        ("step.completed", "done", {}),
        ("flow.cancelled", None, {"reason": "user asked"}),
    )
    state = reduce(events)
    assert state.status is RunStatus.CANCELLED
    assert state.cancel_reason == "user asked"
    assert state.awaits == {}
    assert state.steps["wait"].status is StepStatus.CANCELLED
    assert state.steps["done"].status is StepStatus.COMPLETED


def test_apply_does_not_touch_its_input():
    before = reduce(HAPPY[:5])
    snapshot = before.model_dump()
    for event in HAPPY[5:]:
        apply(before, event)
    assert before.model_dump() == snapshot


# -- properties ---------------------------------------------------------------------------

STEPS = st.sampled_from(["a", "b", "c"])
KEYS = st.sampled_from(["k1", "k2", "k3"])
JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(INT_MIN, INT_MAX), st.text(max_size=5))
SPEC = st.one_of(
    st.tuples(st.just("flow.started"), st.none(), st.fixed_dictionaries({"input": JSON_LEAF})),
    st.tuples(st.sampled_from(["flow.completed", "flow.failed", "flow.cancelled"]), st.none(),
              st.just({})),
    st.tuples(st.just("step.started"), STEPS,
              st.fixed_dictionaries({}, optional={"attempt": st.integers(1, 5)})),
    st.tuples(st.just("step.completed"), STEPS, st.fixed_dictionaries({"result": JSON_LEAF})),
    st.tuples(st.just("step.failed"), STEPS,
              st.fixed_dictionaries({"will_retry": st.booleans(),
                                     "error": st.fixed_dictionaries({"type": st.just("E")})})),
    st.tuples(st.just("step.retry"), STEPS, st.just({})),
    st.tuples(st.sampled_from(["step.await.time", "step.await.event", "step.await.trigger"]),
              STEPS, st.fixed_dictionaries({"key": KEYS})),
    st.tuples(st.sampled_from(["step.resumed", "step.await.timeout"]), STEPS,
              st.fixed_dictionaries({"key": KEYS})),
    st.tuples(st.just("log"), st.one_of(st.none(), STEPS),
              st.fixed_dictionaries({"level": st.just("info"), "msg": st.text(max_size=8)})),
    st.tuples(st.just("emit"), STEPS,
              st.fixed_dictionaries({"name": st.text(min_size=1, max_size=4),
                                     "payload": JSON_LEAF})),
    st.tuples(st.just("state.set"), STEPS, st.fixed_dictionaries({"key": KEYS,
                                                                  "value": JSON_LEAF})),
    st.tuples(st.just("state.delete"), STEPS, st.fixed_dictionaries({"key": KEYS})),
)  # fmt: skip
LOGS = st.lists(SPEC, max_size=40).map(lambda specs: log_of(*specs))


@settings(max_examples=300, deadline=None)
@given(LOGS)
def test_reduce_equals_applying_one_by_one(events):
    state = None
    for event in events:
        state = apply(state, event)
    expected = reduce(events)
    assert (state.model_dump() if state else reduce([]).model_dump()) == expected.model_dump()


@settings(max_examples=300, deadline=None)
@given(LOGS.filter(bool))
def test_state_at_last_event_equals_reduce(events):
    assert state_at(events, events[-1].id) == reduce(events)
    assert state_at(events, events[-1].ts) == reduce(events)


@settings(max_examples=200, deadline=None)
@given(LOGS.filter(bool), st.data())
def test_apply_is_pure_at_every_prefix(events, data):
    cut = data.draw(st.integers(0, len(events) - 1))
    prefix = reduce(events[:cut])
    frozen = prefix.model_dump()
    after = apply(prefix, events[cut])
    assert prefix.model_dump() == frozen
    assert after == reduce(events[: cut + 1])
