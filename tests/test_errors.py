"""Errors carry what they are about as data (``run_id``, ``flow``, ``step``,
``trigger_id``), every error a public call raises on purpose is a ``FlowqueueError``, and
the API's problem responses carry the same fields."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flowqueue import cancel, create_app, get_run, resume, start_flow
from flowqueue import errors as errors_module
from flowqueue.api import create_api
from flowqueue.errors import (
    FlowqueueError,
    InvalidAwait,
    RunAlreadyEnded,
    RunAlreadyExists,
    TriggerAlreadyUsed,
    UnknownFlow,
    UnknownRun,
    UnknownTrigger,
)
from flowqueue.model.reducer import reduce
from flowqueue.settings import Settings


@pytest.fixture
def app() -> Iterator[Any]:
    app = create_app(Settings(redis_url="memory://", workers="workers,tests.flows"))
    app.conf.task_always_eager = True
    yield app
    app.flowqueue.close()


def trigger_of(app: Any, run_id: str) -> str:
    info = reduce(app.flowqueue.store.read(run_id)).steps["wait_trigger"].awaiting
    assert info is not None
    assert info.trigger_id is not None
    return str(info.trigger_id)


def test_every_error_class_is_a_flowqueue_error_and_survives_celerys_round_trip():
    classes = [c for _, c in inspect.getmembers(errors_module, inspect.isclass)]
    raised = [c for c in classes if issubclass(c, Exception) and c.__module__ == "flowqueue.errors"]
    assert RunAlreadyExists in raised
    for cls in raised:
        assert issubclass(cls, FlowqueueError), cls
        error = cls("what happened", run_id="r1", step="s")
        copy = type(error)(*error.args)  # how Celery rebuilds an exception from its args
        assert str(copy) == "what happened"
        assert error.about == {"run_id": "r1", "step": "s"}


def test_errors_of_the_public_calls_say_what_they_are_about(app):
    with pytest.raises(UnknownFlow) as unknown_flow:
        start_flow("no-such-flow", {}, app=app)
    assert unknown_flow.value.flow == "no-such-flow"

    run = start_flow("example-flow", {"name": "a"}, app=app)
    with pytest.raises(RunAlreadyExists) as exists:
        app.flowqueue.orchestrator.start_run("example-flow", {"name": "b"}, run_id=run)
    assert exists.value.about == {"run_id": run, "flow": "example-flow"}
    assert get_run(run, app=app).input == {"name": "a"}  # the first run is untouched

    with pytest.raises(RunAlreadyEnded) as ended:
        cancel(run, app=app)
    assert (ended.value.run_id, ended.value.flow) == (run, "example-flow")

    with pytest.raises(UnknownRun) as unknown_run:
        cancel("run-that-never-was", app=app)
    assert unknown_run.value.run_id == "run-that-never-was"

    with pytest.raises(UnknownTrigger) as unknown_trigger:
        resume("trg_never", {}, app=app)
    assert unknown_trigger.value.trigger_id == "trg_never"


def test_a_used_trigger_names_its_run_flow_and_step(app):
    run = start_flow("wait-trigger", {}, app=app)
    trigger = trigger_of(app, run)
    resume(trigger, {"ok": 1}, app=app)
    with pytest.raises(TriggerAlreadyUsed) as used:
        resume(trigger, {"ok": 2}, app=app)
    assert used.value.about == {
        "run_id": run,
        "flow": "wait-trigger",
        "step": "wait_trigger",
        "trigger_id": trigger,
    }


def test_a_bad_duration_is_an_invalid_await_and_still_a_value_error():
    from flowqueue.model.awaits import seconds_of

    with pytest.raises(InvalidAwait) as bad:
        seconds_of(-1, "sleep")
    assert isinstance(bad.value, ValueError)
    assert isinstance(bad.value, FlowqueueError)


def test_problem_responses_carry_the_same_fields(app):
    run = start_flow("wait-trigger", {}, app=app)
    trigger = trigger_of(app, run)
    resume(trigger, {}, app=app)

    async def ask() -> list[httpx.Response]:
        api = create_api(app)
        async with (
            api.router.lifespan_context(api),
            httpx.AsyncClient(transport=httpx.ASGITransport(api), base_url="http://t") as client,
        ):
            return [
                await client.post(f"/api/_flows/triggers/{trigger}", json={}),
                await client.post("/api/_flows/triggers/trg_nothing", json={}),
                await client.get("/api/_flows/no-such-flow/runs"),
            ]

    used, unknown, no_flow = asyncio.run(ask())
    assert used.status_code == 409
    assert used.json() | {"detail": ""} == {
        "type": "about:blank",
        "title": "Conflict",
        "status": 409,
        "detail": "",
        "run_id": run,
        "flow": "wait-trigger",
        "step": "wait_trigger",
        "trigger_id": trigger,
    }
    assert unknown.status_code == 404
    assert unknown.json()["trigger_id"] == "trg_nothing"
    assert no_flow.status_code == 404
    assert no_flow.json()["flow"] == "no-such-flow"
    assert "run_id" not in no_flow.json()  # fields that are not known are left out
