"""Events as CloudEvents 1.0 (flowqueue/model/cloudevents.py): every event of real runs
goes out as an envelope, the CNCF CloudEvents SDK reads it and writes it back, and it
reads back as the same event; the API's ``?format=cloudevents`` on a run's pages, its
stream and the feed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cloudevents.core.formats.json import JSONFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from flowqueue import start_flow
from flowqueue.errors import InvalidEvent
from flowqueue.model.cloudevents import encode_cloudevent, from_cloudevent, to_cloudevent
from flowqueue.model.events import LIFECYCLE_KINDS, Event
from tests.test_api import follow_feed, sse_events

SDK = JSONFormat()
# JSON an event accepts: 64-bit integers, finite floats, Unicode text (no lone surrogates).
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=8)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False,
    allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)  # fmt: skip


def through_the_sdk(event: Event) -> Event:
    """``event`` exported, read and written again by the SDK (which checks the spec's
    attribute rules on reading), then read back by flowqueue."""
    cloud = SDK.read(None, encode_cloudevent(event))
    return from_cloudevent(SDK.write(cloud))


def test_every_event_of_real_runs_round_trips_through_the_sdk(make_app):
    app = make_app()
    runs = [
        start_flow("example-flow", {"name": "cé ✓"}, app=app),
        start_flow("echo", {"deep": [[[{"x": None}]]], "big": 2**63}, app=app),
        start_flow("always-fails", {}, app=app),
    ]
    kinds = set()
    for run in runs:
        for event in app.flowqueue.store.read(run):
            kinds.add(event.kind)
            assert through_the_sdk(event) == event
            cloud = SDK.read(None, encode_cloudevent(event))
            assert cloud.get_id() == event.id
            assert cloud.get_source() == f"/flows/{event.flow}/runs/{event.run_id}"
            assert cloud.get_type() == f"flowqueue.{event.kind}"
            assert cloud.get_subject() == event.step
            assert cloud.get_time() == event.ts
            assert cloud.get_data() == event.data
            assert cloud.get_extension("runid") == event.run_id
            assert cloud.get_extension("flow") == event.flow
    assert {"flow.started", "step.started", "emit", "step.completed", "step.failed"} <= kinds


def event_of(data: dict[str, Any], meta: dict[str, Any], step: str | None) -> Event:
    return Event(
        kind="step.completed" if step else "flow.started",
        run_id="01a2362e-7ea5-79f1-bc34-b02376a10985",
        flow="orders.v2",
        step=step,
        data=data,
        meta=meta,
        id="1764669600123-7",
        ts=datetime(2026, 12, 2, 10, 0, 0, 123000, tzinfo=UTC),
    )


@settings(max_examples=60, deadline=None)
@given(
    data=st.dictionaries(TEXT, JSON, max_size=4),
    meta=st.one_of(
        st.just({}),
        st.builds(lambda n: {"attempt": n}, st.integers(1, 1000)),
        st.dictionaries(TEXT, JSON, max_size=3),
    ),
    step=st.sampled_from([None, "charge_card", "s-1.a:b"]),
)
def test_any_data_and_meta_read_back(data, meta, step):
    event = event_of(data, meta, step)
    assert from_cloudevent(encode_cloudevent(event)) == event
    assert through_the_sdk(event) == event


def test_an_attempt_is_an_extension_and_other_meta_travels_as_json_text():
    plain = to_cloudevent(event_of({}, {"attempt": 3}, "s")).model_extra or {}
    assert plain == {"flow": "orders.v2", "runid": "01a2362e-7ea5-79f1-bc34-b02376a10985",
                     "attempt": 3}  # fmt: skip
    more = to_cloudevent(event_of({}, {"attempt": 3, "by": "ops"}, "s")).model_extra or {}
    assert json.loads(more["flowqueuemeta"]) == {"attempt": 3, "by": "ops"}
    # a binary-mode header carries the attempt as text
    envelope = json.loads(encode_cloudevent(event_of({}, {"attempt": 3}, "s")))
    assert from_cloudevent({**envelope, "attempt": "3"}).meta == {"attempt": 3}


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"specversion": "0.3"}, "only 1.0"),
        ({"type": "com.example.order"}, "not a flowqueue event's"),
        ({"type": "flowqueue.no.such.kind"}, "unknown event kind"),
        ({"source": "/elsewhere", "flow": None, "runid": None}, "names no run"),
        ({"time": None}, "has no time"),
        ({"id": None}, "id"),
        ({"flowqueuemeta": "[1]"}, "flowqueuemeta must be"),
        ({"data": [1, 2]}, "JSON object"),
    ],
)
def test_what_does_not_fit_is_refused_with_what_to_fix(change, says):
    envelope = json.loads(encode_cloudevent(event_of({"a": 1}, {"attempt": 1}, "s")))
    envelope.update(change)
    envelope = {k: v for k, v in envelope.items() if v is not None}
    with pytest.raises(InvalidEvent, match=says):
        from_cloudevent(json.dumps(envelope))


@pytest.mark.e2e
def test_the_api_pages_and_streams_cloudevents(api, cluster):
    with api.client() as client:
        run = client.post("/api/_flows/example-flow/start", json={"name": "ce"}).json()["run_id"]
        streamed = sse_events(api, f"/api/_flows/example-flow/runs/{run}/stream?format=cloudevents")
        log = cluster.fq.store.read(run)
        assert [s.id for s in streamed] == [e.id for e in log]
        assert [from_cloudevent(s.data) for s in streamed] == log
        path = f"/api/_flows/example-flow/runs/{run}/events"
        page = client.get(path, params={"format": "cloudevents", "limit": 2}).json()
        assert [from_cloudevent(e) for e in page["events"]] == log[:2]
        rest = client.get(path, params={"format": "cloudevents", "after": page["next_after"]})
        assert [from_cloudevent(e) for e in rest.json()["events"]] == log[2:]
        plain = client.get(path).json()
        assert [e["id"] for e in plain["events"]] == [e.id for e in log]  # the default stays
        refused = client.get(path, params={"format": "xml"})
        assert refused.status_code == 422
        assert "cloudevents" in refused.text


@pytest.mark.e2e
def test_the_feed_streams_cloudevents(api, cluster):
    run, seen = follow_feed(api, "/api/_events/stream?format=cloudevents")
    assert {envelope["specversion"] for envelope in seen} == {"1.0"}
    ours = [e for e in map(from_cloudevent, seen) if e.run_id == run]
    log = cluster.fq.store.read(run)
    assert ours == [e for e in log if e.kind in LIFECYCLE_KINDS]
