"""Declared start triggers in the trigger registry: a worker records its code's triggers
when it starts (``trigger.declared``), only what changed (a restart with the same code
writes nothing), drops the ones of its flows its code no longer has
(``trigger.undeclared``) and leaves other flows' alone; a process whose own code lacks a
trigger still lists it, with its next fire times, and can pause it by name. A real
Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flowqueue.backend.redis.triggers import Declaration, TriggerRegistry
from flowqueue.errors import UnknownSchedule
from flowqueue.runtime.app import create_app
from flowqueue.runtime.engine import Flowqueue, flowqueue_of
from flowqueue.runtime.triggers import TriggerInfo, list_triggers, pause_schedule, schedule_of
from flowqueue.settings import Settings

NIGHTLY = Declaration(
    trigger="schedule",
    name="nightly-q",
    flow="billing-q",
    settings={"cron": "0 2 * * *", "timezone": "Europe/Berlin", "input": None, "missed": "skip"},
)
HOOK = Declaration(
    trigger="webhook",
    name="stripe-q",
    flow="billing-q",
    settings={"verifier": "stripe", "headers": [], "max_body_bytes": 1, "idempotency_field": "id"},
)
SIGNUP = Declaration(trigger="event", name="user.signed_up-q", flow="welcome-q")


@pytest.fixture
def fq(settings: Settings) -> Iterator[Flowqueue]:
    """An app with no flows of its own: what it knows of triggers, workers declared."""
    engine = flowqueue_of(create_app(settings.model_copy(update={"workers": ""})))
    yield engine
    engine.close()


@pytest.fixture
def registry(fq: Flowqueue) -> TriggerRegistry:
    return fq.trigger_registry


def kinds(registry: TriggerRegistry) -> list[tuple[str, str, str | None]]:
    return [(e.kind, e.name, e.worker) for _, e in registry.events()]


def test_a_worker_records_what_changed_and_nothing_else(registry):
    assert registry.declare([NIGHTLY, HOOK], ["billing-q"], "w1@host", 1_000) == 2
    assert registry.declare([NIGHTLY, HOOK], ["billing-q"], "w2@host", 2_000) == 0  # same code
    assert registry.declare([SIGNUP], ["welcome-q"], "w3@host", 3_000) == 1  # other flows stay
    later = NIGHTLY.model_copy(update={"settings": {**NIGHTLY.settings, "cron": "0 3 * * *"}})
    assert registry.declare([later], ["billing-q"], "w4@host", 4_000) == 2  # changed, and gone
    assert kinds(registry) == [
        ("trigger.declared", "nightly-q", "w1@host"),
        ("trigger.declared", "stripe-q", "w1@host"),
        ("trigger.declared", "user.signed_up-q", "w3@host"),
        ("trigger.declared", "nightly-q", "w4@host"),
        ("trigger.undeclared", "stripe-q", "w4@host"),
    ]
    declared = registry.declared()
    found = sorted((Declaration.of(event) for _, event in declared.values()), key=lambda d: d.name)
    assert found == [later, SIGNUP]
    ((_, undeclared),) = registry.history("stripe-q", count=1)
    assert (undeclared.trigger, undeclared.flow) == ("webhook", "billing-q")


def mine(fq: Flowqueue) -> list[TriggerInfo]:
    """The listing's triggers of this test's flows (the session's code has others)."""
    return [t for t in list_triggers(fq) if t.flow.endswith("-q")]


def test_a_process_lists_and_pauses_what_only_workers_declare(fq, registry):
    assert mine(fq) == []
    with pytest.raises(UnknownSchedule, match="no schedule 'nightly-q'"):
        pause_schedule(fq, "nightly-q")
    registry.declare([NIGHTLY, HOOK, SIGNUP], ["billing-q", "welcome-q"], "w1@host", 1_000)
    listed = {(t.kind, t.name): t for t in mine(fq)}
    assert list(listed) == [
        ("schedule", "nightly-q"),
        ("event", "user.signed_up-q"),
        ("webhook", "stripe-q"),
    ]
    nightly = listed["schedule", "nightly-q"]
    assert (nightly.cron, nightly.timezone, nightly.missed) == (
        "0 2 * * *",
        "Europe/Berlin",
        "skip",
    )
    assert nightly.declared_by == "w1@host"
    assert nightly.declared_at is not None
    assert len(nightly.next_fire_times) == 3
    assert schedule_of(fq, "nightly-q").cron == "0 2 * * *"
    assert pause_schedule(fq, "nightly-q") is True
    (paused,) = [t for t in mine(fq) if t.kind == "schedule"]
    assert (paused.status, paused.next_fire_times) == ("paused", [])
    with pytest.raises(UnknownSchedule, match=r"known schedules: .*nightly-q") as caught:
        schedule_of(fq, "stripe-q")  # a webhook's name is not a schedule's
    assert caught.value.schedule == "stripe-q"


def test_a_declaration_this_version_cannot_read_is_listed_without_next_times(fq, registry):
    odd = NIGHTLY.model_copy(update={"settings": {"cron": "0 2 * * *", "jitter": "5m"}})
    registry.declare([odd], ["billing-q"], "newer@host", 1_000)
    (listed,) = mine(fq)
    assert (listed.name, listed.next_fire_times, listed.cron) == ("nightly-q", [], None)
