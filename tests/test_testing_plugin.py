"""``flowqueue.testing`` as a user meets it: a project of their own in a temporary
directory, pytest run there with only this plugin (autoloading off, so no pytest-celery
and none of this repository's conftest), then the errors it gives when a run does not
end in time, against this repository's session worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import redis

from flowqueue.errors import FlowqueueError, UnknownRun
from flowqueue.testing import RunTimeout, awaiting

pytestmark = pytest.mark.e2e
pytest_plugins = ["pytester"]
WORKER_LOG = "runpytest-[0-9]*/flowqueue-worker[0-9]*/worker.log"  # in each inner run's basetemp

FLOWS = """
from typing import Any

from pydantic import BaseModel

from flowqueue import FlowContext, step


class Greeting(BaseModel):
    name: str


@step(flow="greeting", entry=True, emits=["greeted"])
def greet(ctx: FlowContext, greeting: Greeting) -> str:
    ctx.emit("greeted", {"text": f"hello, {greeting.name}"})
    return "greeted"


@step(flow="greeting", subscribes="greeted")
def shout(ctx: FlowContext, inputs: dict[str, Any]) -> str:
    return inputs["greeted"]["text"].upper()


@step(flow="wobbly", entry=True)
def wobble(ctx: FlowContext, input: Any) -> int:
    if ctx.attempt < 2:  # no retry policy of its own: the settings' default applies
        raise RuntimeError("first attempt fails")
    return ctx.attempt


@step(flow="approval", entry=True)
def ask(ctx: FlowContext, input: Any) -> Any:
    return ctx.wait_for_trigger(timeout=3600)
"""

CONFTEST = """
import pytest


@pytest.fixture(scope="session")
def flowqueue_settings():
    return {"retry_attempts": 2, "retry_delay": 0.1}
"""

TESTS = """
import json
from pathlib import Path

import pytest

from flowqueue import resume
from flowqueue.testing import RunTimeout, awaiting


def test_a_flow_runs_to_its_end(run_flow):
    state = run_flow("greeting", {"name": "ada"})
    assert state.status == "completed"
    assert state.steps["shout"].result == "HELLO, ADA"


def test_the_settings_fixture_reaches_the_worker(run_flow):
    state = run_flow("wobbly", None)
    assert state.status == "completed"
    assert state.steps["wobble"].result == 2


def test_a_run_that_waits_for_a_person_times_out_with_its_story(run_flow):
    with pytest.raises(RunTimeout, match="did not end within 1 s") as raised:
        run_flow("approval", None, timeout=1)
    assert raised.value.run_id in str(raised.value)
    assert "for a resume of trigger trg_" in str(raised.value)


def test_start_wait_resume_wait(run_flow, flowqueue_app):
    run = run_flow.start("approval", None)
    parked = run_flow.wait(run, until=awaiting("ask"))
    resume(parked.steps["ask"].awaiting.trigger_id, {"ok": True}, app=flowqueue_app)
    assert run_flow.wait(run).steps["ask"].result == {"ok": True}


def test_what_the_session_started(flowqueue_worker, flowqueue_redis_url):
    pid = flowqueue_worker.process.process.pid
    where = Path(__file__).with_name("started.json")
    where.write_text(json.dumps({"worker": pid, "redis": flowqueue_redis_url}))
"""

SHOP_TEST = """
import pytest

from flowqueue.testing import RunTimeout


def test_the_ini_option_names_the_flow_package(run_flow):
    assert run_flow("stock-check", {"sku": "pear"}).steps["count"].result == 3


def test_a_dead_worker_is_named_at_once(run_flow, flowqueue_worker):
    flowqueue_worker.process.kill()
    with pytest.raises(RunTimeout, match="is running, but the test worker exited") as raised:
        run_flow("stock-check", {"sku": "fig"}, timeout=600)
    assert "exited with code -9" in str(raised.value)
"""

MEMORY_CONFTEST = """
import pytest


@pytest.fixture(scope="session")
def flowqueue_settings():
    return {"redis_url": "memory://"}
"""

MEMORY_TEST = """
def test_a_flow_on_memory(run_flow):
    run_flow("greeting", {"name": "ada"})
"""

SHOP_FLOWS = """
from typing import Any

from flowqueue import FlowContext, step


@step(flow="stock-check", entry=True)
def count(ctx: FlowContext, input: Any) -> int:
    return len(input["sku"]) - 1
"""


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A user's project: a workers package, a shop package, their tests and conftests."""
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\naddopts = '-p no:cacheprovider'\n")
    pytester.mkpydir("workers")
    pytester.path.joinpath("workers", "flows.py").write_text(FLOWS)
    pytester.mkpydir("shop")
    pytester.path.joinpath("shop", "flows.py").write_text(SHOP_FLOWS)
    pytester.path.joinpath("shop", "empty.py").write_text("")
    pytester.makeconftest(CONFTEST)
    pytester.path.joinpath("test_flows.py").write_text(TESTS)
    pytester.path.joinpath("test_shop.py").write_text(SHOP_TEST)
    memory = pytester.mkdir("memory")  # its conftest asks for a Redis private to the app
    memory.joinpath("conftest.py").write_text(MEMORY_CONFTEST)
    memory.joinpath("test_memory.py").write_text(MEMORY_TEST)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # only the plugin: -p below
    # Neither may reach a real Redis or broker (port 9 is "discard": nothing listens).
    monkeypatch.setenv("FLOWQUEUE_REDIS_URL", "redis://127.0.0.1:9/0")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:9/0")
    return pytester


def run_pytest(project: pytest.Pytester, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess("-p", "flowqueue.testing", *args, timeout=300)


def test_a_users_project_tests_its_flows_with_the_fixtures(project):
    result = run_pytest(project, "test_flows.py")
    result.assert_outcomes(passed=5)
    assert len(list(project.path.glob(WORKER_LOG))) == 1
    started = json.loads(project.path.joinpath("started.json").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(started["worker"], 0)  # stopped, and reaped by the session
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(started["redis"], socket_connect_timeout=2).ping()


def test_the_ini_option_names_the_packages_the_worker_serves(project):
    run_pytest(project, "-o", "flowqueue_workers=shop.flows", "test_shop.py").assert_outcomes(
        passed=2
    )


@pytest.mark.parametrize(
    ("package", "error"),
    [
        ("shop.missing", "cannot import flow module 'shop.missing'"),
        ("shop.empty", "no flows found in FLOWQUEUE_WORKERS='shop.empty'"),
    ],
)
def test_a_wrong_flow_package_is_a_clear_error_before_any_worker_starts(project, package, error):
    test = "test_shop.py::test_the_ini_option_names_the_flow_package"
    result = run_pytest(project, "-o", f"flowqueue_workers={package}", test)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*ConfigurationError: {error}*"])
    assert not list(project.path.glob(WORKER_LOG))  # no worker started


def test_a_worker_cannot_share_a_memory_redis(project):
    result = run_pytest(project, "memory")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*ConfigurationError: the test worker cannot share memory://*"])
    assert not list(project.path.glob(WORKER_LOG))


def test_importing_the_plugin_starts_nothing_and_changes_nothing():
    """pytest imports it for every run in an environment where flowqueue is installed."""
    code = """
import json, os, threading
before = dict(os.environ)
import flowqueue.testing
from flowqueue.runtime import app
children = open(f"/proc/self/task/{os.getpid()}/children").read().split()
print(json.dumps([threading.active_count(), os.environ == before, children, len(app._default)]))
"""
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert json.loads(shown.stdout) == [1, True, [], 0], shown.stderr


def test_a_run_that_does_not_end_in_time_names_its_run_status_and_worker(
    run_flow, flowqueue_worker
):
    run = run_flow.start("expense-approval", {"employee": "bo", "amount": 1})
    with pytest.raises(RunTimeout) as raised:
        run_flow.wait(run, timeout=1)
    error = raised.value
    assert isinstance(error, FlowqueueError)
    assert isinstance(error, TimeoutError)
    assert (error.run_id, error.flow) == (run, "expense-approval")
    text = str(error)
    assert text.startswith(f"run {run} of flow 'expense-approval' did not end within 1 s")
    assert "step request_approval: awaiting, for a resume of trigger trg_" in text
    assert "step.await.trigger" in text  # its last events
    assert f"worker {flowqueue_worker.hostname} is running" in text


def test_waiting_for_a_state_the_run_ended_without_fails_at_once(run_flow):
    run = run_flow.start("example-flow", {"name": "x"})
    with pytest.raises(RunTimeout, match=r"ended \(completed\) before awaiting\('first_step'\)"):
        run_flow.wait(run, until=awaiting("first_step"), timeout=120)


def test_waiting_for_an_unknown_run_says_so(run_flow):
    with pytest.raises(UnknownRun, match="no run"):
        run_flow.wait("01a00000-0000-7000-8000-000000000000")
