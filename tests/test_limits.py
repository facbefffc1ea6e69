"""One limit for every way in: whatever a write path accepts, every reader reads back
identically; whatever it refuses writes nothing. Property tests against a real Redis."""

from __future__ import annotations

import math
from enum import IntEnum, StrEnum
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_core import from_json, to_json

from flowqueue.api.frames import FrameCache
from flowqueue.api.models import EventPage
from flowqueue.backend.redis.store import RedisEventStore
from flowqueue.backend.store import EventStore
from flowqueue.errors import InvalidEvent, InvalidSignal, NonJsonPayload
from flowqueue.model.awaits import check_signal_name
from flowqueue.model.events import Event, EventKind, NewEvent, event_from_json
from flowqueue.model.ids import U64_MAX, is_stream_id
from flowqueue.model.reducer import reduce
from flowqueue.model.validation import (
    INT_MAX,
    INT_MIN,
    MAX_JSON_DEPTH,
    check_identifier,
    check_json,
)
from tests.json_strategies import JSON_VALUES, same_json

SLOW = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# The one Lua reader of stored bodies (run_lib.lua's count_duration) must decode them too.
LUA_DECODES = "return pcall(cjson.decode, ARGV[1]) and 1 or 0"


def deep(levels: int) -> Any:
    value: Any = "bottom"
    for _ in range(levels):
        value = [value]
    return value


def state_event(run: str, value: Any) -> NewEvent:
    return NewEvent(
        kind=EventKind.STATE_SET,
        run_id=run,
        flow="limits",
        step="s",
        data={"key": "k", "value": value},
    )


def every_reader(event: Event, value: Any, raw: bytes | None, client: redis.Redis | None) -> None:
    """``value`` as each reader sees the stored ``event``: all must equal it."""
    assert same_json(event.data["value"], value)
    assert same_json(reduce([event]).state["k"], value)  # the reducer
    assert same_json(event_from_json(event.to_json()).data["value"], value)  # public JSON
    page = from_json(EventPage(events=[event]).model_dump_json())  # an API response
    assert same_json(page["events"][0]["data"]["value"], value)
    state = from_json(reduce([event]).model_dump_json())  # GET .../runs/{run}
    assert same_json(state["state"]["k"], value)
    sse = FrameCache().event_frame(event)  # an SSE frame, as a browser parses it
    data = sse.split(b"\ndata: ", 1)[1].rstrip(b"\n")
    assert same_json(from_json(data)["data"]["value"], value)
    if client is not None and raw is not None:
        assert client.eval(LUA_DECODES, 0, raw) == 1


@given(value=JSON_VALUES)
@SLOW
def test_what_a_store_accepts_every_reader_reads_back(store: EventStore, value: Any) -> None:
    run = "limits-run"
    before = store.count(run)
    try:
        stored = store.append(state_event(run, value))
    except InvalidEvent:
        assert store.count(run) == before  # refused: nothing written
        with pytest.raises(NonJsonPayload):  # ... and only what the one limit refuses
            check_json(value, "value")
        return
    (read,) = store.read_reverse(run, limit=1)
    assert read.id == stored.id
    client, raw = None, None
    if isinstance(store, RedisEventStore):
        client = store.client
        key = store.commands.keys.run_stream(run)
        raw = client.xrange(key, stored.id, stored.id)[0][1][b"e"]
    every_reader(read, value, raw, client)


def test_the_depth_limit_sits_exactly_at_max_json_depth():
    check_json(deep(MAX_JSON_DEPTH), "input")
    with pytest.raises(NonJsonPayload, match=f"deeper than the limit of {MAX_JSON_DEPTH}"):
        check_json(deep(MAX_JSON_DEPTH + 1), "input")
    # An event holding a value at the limit is accepted (room for the envelope)...
    state_event("r", deep(MAX_JSON_DEPTH))
    # ... and the 200 levels that once passed the API and poisoned every reader are not.
    with pytest.raises(NonJsonPayload):
        state_event("r", deep(200))


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("\ud800", "lone surrogate"),
        ({"\udfff": 1}, "lone surrogate"),
        (float("nan"), "finite"),
        (float("-inf"), "finite"),
        (2**64, "64 bits"),
        (-(2**63) - 1, "64 bits"),
        (10**5000, "64 bits"),  # past Python's int-to-str limit: still one clear message
        ({1: "x"}, "keys must be strings"),
        (b"bytes", "not JSON"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_values_json_cannot_carry_exactly_are_refused_with_what_to_do(value, says):
    with pytest.raises(NonJsonPayload, match=says):
        check_json(value, "input")


@pytest.mark.parametrize("name", ["probe.nl\n", "a\nb", "\nx", "x\r", "x ", "{tag}", ""])
def test_names_are_checked_with_full_match_patterns(name):
    with pytest.raises(InvalidEvent):
        check_identifier("flow name", name)
    with pytest.raises(InvalidSignal):
        check_signal_name(name)


@pytest.mark.parametrize(
    ("cursor", "valid"),
    [
        ("0-0", True),
        ("1719667845123-4", True),
        ("1719667845123", True),
        (f"{U64_MAX}-{U64_MAX}", True),
        (f"{U64_MAX + 1}-0", False),
        (f"0-{U64_MAX + 1}", False),
        ("99999999999999999999-0", False),
        ("1-2\n", False),
        ("١٢٣-0", False),  # Arabic-Indic digits: str.isdigit says yes, Redis says no
        ("1--2", False),
        ("-1", False),
    ],
)
def test_cursors_are_checked_against_redis_real_range(cursor, valid, redis_client):
    assert is_stream_id(cursor) is valid
    if valid:  # what we accept, Redis accepts
        redis_client.xrange("limits-cursor", cursor, "+", 1)


@given(value=st.from_type(object) | JSON_VALUES)
@settings(max_examples=500, deadline=None)
def test_fuzz_check_json_raises_only_its_own_error(value):
    """The validation function's fuzz target: on any Python object it either passes a
    value that JSON round-trips exactly within the depth limit, or says why not."""
    try:
        check_json(value, "v")
    except NonJsonPayload:
        return
    assert same_json(from_json(to_json(value)), value)


@given(text=st.text(max_size=140) | st.text(st.characters(exclude_categories=()), max_size=8))
@settings(max_examples=500, deadline=None)
def test_fuzz_identifiers_and_cursors(text):
    try:
        check_identifier("name", text)
    except InvalidEvent:
        pass
    else:
        assert text.isascii()
        assert "\n" not in text
        assert 1 <= len(text) <= 128
    if is_stream_id(text):
        ms, _, seq = text.partition("-")
        assert int(ms) <= U64_MAX
        assert int(seq or 0) <= U64_MAX


def obeys_the_rules(value: Any, room: int = MAX_JSON_DEPTH) -> bool:
    """The one limit, written again independently: the oracle for ``check_json``."""
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, int):
        return INT_MIN <= value <= INT_MAX
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return room > 0 and all(obeys_the_rules(v, room - 1) for v in value)
    if isinstance(value, dict):
        return room > 0 and all(
            isinstance(k, str) and obeys_the_rules(k) and obeys_the_rules(v, room - 1)
            for k, v in value.items()
        )
    return False


@given(value=JSON_VALUES)
@settings(max_examples=400, deadline=None)
def test_check_json_accepts_exactly_what_the_rules_allow(value):
    try:
        check_json(value, "v")
    except NonJsonPayload:
        assert not obeys_the_rules(value)
    else:
        assert obeys_the_rules(value)


@pytest.mark.parametrize("shape", ["list", "dict", "mixed"])
def test_the_depth_limit_holds_for_every_shape_of_nesting(shape):
    def nest(levels: int) -> Any:
        value: Any = 1
        for level in range(levels):
            as_list = shape == "list" or (shape == "mixed" and level % 2 == 0)
            value = [value] if as_list else {"k": value}
        return value

    check_json(nest(MAX_JSON_DEPTH), "input")
    with pytest.raises(NonJsonPayload, match="deeper"):
        check_json(nest(MAX_JSON_DEPTH + 1), "input")
    with pytest.raises(NonJsonPayload, match="deeper"):  # a deep branch beside plain ones
        check_json({"a": 1, "b": [1, "x"], "c": nest(MAX_JSON_DEPTH)}, "input")


class Level(IntEnum):
    HIGH = INT_MAX


class Word(StrEnum):
    BAD = "\ud800"
    GOOD = "fine"


EDGES = {
    "int-max": (INT_MAX, True),
    "int-min": (INT_MIN, True),
    "int-max-plus-1": (INT_MAX + 1, False),
    "int-min-minus-1": (INT_MIN - 1, False),
    "list-int-too-big": ([INT_MAX + 1], False),
    "dict-int-too-small": ({"n": INT_MIN - 1}, False),
    "int-enum": (Level.HIGH, True),
    "str-enum": (Word.GOOD, True),
    "str-enum-surrogate": (Word.BAD, False),
    "list-str-enum-surrogate": ([Word.BAD], False),
    "plain-str": ("plain", True),
    "minus-zero": (-0.0, True),
}


@pytest.mark.parametrize(("value", "ok"), EDGES.values(), ids=EDGES.keys())
def test_scalars_at_the_edges_alone_and_inside_containers(value, ok):
    if ok:
        check_json(value, "v")
    else:
        with pytest.raises(NonJsonPayload):
            check_json(value, "v")


def test_messages_name_the_path_and_what_to_do():
    with pytest.raises(NonJsonPayload, match=r"^input\.items\[1\]\.qty is nan"):
        check_json({"items": [{"qty": 1}, {"qty": float("nan")}]}, "input")
    with pytest.raises(NonJsonPayload, match=r"^input\.a is the integer 18446744073709551616"):
        check_json({"a": INT_MAX + 1}, "input")
    with pytest.raises(NonJsonPayload, match=r"^input has a key that holds a lone surrogate"):
        check_json({"\ud800": 1}, "input")
    with pytest.raises(InvalidEvent, match="event is missing run_id, flow"):
        NewEvent(kind="log")
    with pytest.raises(InvalidEvent, match="unknown event field"):
        NewEvent(kind="log", run_id="r", flow="f", extra=1)
    with pytest.raises(InvalidEvent, match="step name 'a b' is not valid"):
        NewEvent(kind="log", run_id="r", flow="f", step="a b")
    with pytest.raises(InvalidEvent, match="event meta must be a JSON object"):
        NewEvent(kind="log", run_id="r", flow="f", meta=[1])
    long = "x" * 500
    with pytest.raises(InvalidEvent) as refused:
        check_identifier("run id", long + "!")
    assert len(str(refused.value)) < 200  # a long value is cut in the message
    assert NewEvent(kind=EventKind.LOG, run_id="r", flow="f").kind == "log"  # plain str
    assert type(NewEvent(kind=EventKind.LOG, run_id="r", flow="f").kind) is str


class Ratio(float):
    """A float subclass (as numpy.float64 is): finite ones are JSON numbers too."""


def test_number_subclasses_follow_the_rules_of_their_value():
    check_json({"r": Ratio(0.5)}, "v")
    with pytest.raises(NonJsonPayload, match="finite"):
        check_json({"r": Ratio("inf")}, "v")
