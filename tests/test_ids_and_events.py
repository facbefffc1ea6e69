"""Identifiers and the event record's validation and encoding."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import pytest

from flowqueue.errors import InvalidEvent, PayloadTooLarge, UnknownEventKind
from flowqueue.model.events import (
    KNOWN_KINDS,
    Event,
    EventKind,
    NewEvent,
    encode_body,
    event_from_json,
)
from flowqueue.model.ids import format_ts, ms_to_datetime, new_run_id, parse_stream_id


def test_run_ids_are_uuid7_and_sort_by_time():
    first = new_run_id()
    time.sleep(0.002)
    second = new_run_id()
    parsed = uuid.UUID(first)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert first < second
    assert abs(int(first.replace("-", "")[:12], 16) - time.time() * 1000) < 5_000


def test_stream_ids_compare_numerically():
    assert parse_stream_id("99-10") > parse_stream_id("99-9")
    assert parse_stream_id("100") == (100, 0)


def test_timestamp_format_has_milliseconds_and_z():
    assert format_ts(ms_to_datetime(1_719_667_845_123)) == "2024-06-29T13:30:45.123Z"


def test_design_kinds_are_all_known_plus_the_added_ones():
    design = """flow.started flow.completed flow.failed flow.cancelled step.started
    step.completed step.failed step.retry step.await.time step.await.event
    step.await.trigger step.resumed step.await.timeout emit log state.set state.delete"""
    # kinds added since, each documented in EventKind and the README
    added = {"step.once", "flow.rerun", "flow.retried"}
    assert set(design.split()) | added == KNOWN_KINDS


def test_unknown_kind_message_lists_the_valid_ones():
    with pytest.raises(UnknownEventKind, match=r"use one of: .*flow\.started"):
        NewEvent(kind="flow.begun", run_id="r", flow="f")
    with pytest.raises(UnknownEventKind):
        NewEvent(kind=["log"], run_id="r", flow="f")  # type: ignore[arg-type]


def test_wrong_types_become_invalid_event_not_pydantic_errors():
    with pytest.raises(InvalidEvent, match="run id None is not valid"):
        NewEvent(kind="log", run_id=None, flow="f")  # type: ignore[arg-type]
    with pytest.raises(InvalidEvent, match=r"unknown event field.*colour"):
        NewEvent(kind="log", run_id="r", flow="f", colour="red")  # type: ignore[call-arg]
    with pytest.raises(InvalidEvent, match="missing flow"):
        NewEvent(kind="log", run_id="r")  # type: ignore[call-arg]
    with pytest.raises(InvalidEvent, match=r"data\.when is a datetime"):
        NewEvent(kind="log", run_id="r", flow="f", data={"when": datetime.now()})


def test_model_validate_applies_the_same_rules_as_the_constructor():
    good = {"kind": "log", "run_id": "r", "flow": "f", "data": {"a": [1, {"b": None}]}}
    assert NewEvent.model_validate(good) == NewEvent(**good)
    with pytest.raises(InvalidEvent, match=r"data\.a\[1\]\.b is nan"):
        NewEvent.model_validate({**good, "data": {"a": [1, {"b": float("nan")}]}})
    with pytest.raises(UnknownEventKind):
        NewEvent.model_validate({**good, "kind": "nope"})


def test_enum_kinds_are_stored_as_plain_strings():
    event = NewEvent(kind=EventKind.LOG, run_id="r", flow="f")
    assert type(event.kind) is str
    assert event.model_fields_set == {"kind", "run_id", "flow"}


def test_encode_enforces_the_size_limit_with_a_hint():
    event = NewEvent(kind=EventKind.LOG, run_id="r", flow="f", data={"blob": "x" * 100})
    assert len(encode_body(event, 1_000)) < 1_000
    with pytest.raises(PayloadTooLarge, match="reference"):
        encode_body(event, 50)


def test_public_json_roundtrip():
    stored = Event.stamped(
        NewEvent(kind="emit", run_id="r", flow="f", step="s", data={"name": "x", "payload": 1}),
        "1719667845123-0",
    )
    assert event_from_json(stored.to_json()) == stored
    with pytest.raises(InvalidEvent):
        event_from_json(b'{"id": "1-0"}')
