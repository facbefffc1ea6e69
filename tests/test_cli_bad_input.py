"""The ``flowqueue`` command never shows a traceback: a battery of bad commands, each
run as a real subprocess through the console script, exactly as a user types it.

Every case must exit non-zero with one line on stderr (or a click usage error) that
says what is wrong, never "Traceback" nor the catch-all "unexpected error", and write
nothing. No worker is needed: the runs the cases point at are seeded eagerly in-process
against the same real Redis, in a database of their own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from flowqueue import create_app, get_run, start_flow
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.settings import Settings
from tests.worker_harness import own_database

ROOT = Path(__file__).resolve().parent.parent
FLOWQUEUE = str(Path(sys.executable).parent / "flowqueue")
WORKERS = "workers,tests.flows"
UNREACHABLE = "redis://127.0.0.1:9/0"  # "discard": nothing listens there
SMALL_LIMIT = {"FLOWQUEUE_MAX_PAYLOAD_BYTES": "2000"}
NO_WORKER = (
    "warning: no live worker serves step 'first_step' of flow 'example-flow' "
    "(nor 1 more of its steps); start one with: celery -A flowqueue worker"
)
BIG = json.dumps({"blob": "x" * 5_000})


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    expect: str  # in stderr
    env: dict[str, str] = field(default_factory=dict)
    usage: bool = False  # a click usage error: exit 2, "Usage:" and one "Error:" line
    writes: bool = False  # a write command: nothing may be written

    def args(self, runs: dict[str, str]) -> list[str]:
        return [arg.replace("{run}", runs["run"]) for arg in self.argv]

    @property
    def seeded(self) -> bool:
        return any("{run}" in arg for arg in self.argv)


def case(id: str, *argv: str, expect: str, **options: Any) -> Case:
    return Case(id, argv, expect, **options)


START = ("start", "example-flow", "--input")
CASES = [
    # -- JSON options: parsed without crashing on any text ----------------------------
    case("start-bad-json", *START, "{order", expect="not valid JSON", usage=True, writes=True),
    case("start-empty-json", *START, "", expect="not valid JSON", usage=True, writes=True),
    case("start-3000-deep", *START, nested(3000), expect="nests too deeply", usage=True),
    case("start-200-deep", *START, nested(200), expect="deeper than the limit", writes=True),
    case(
        "start-lone-surrogate",
        *START,
        '{"a": "\\ud800"}',
        expect="must come in pairs",
        usage=True,
        writes=True,
    ),
    case("start-nan", *START, '{"a": NaN}', expect="NaN and Infinity", usage=True, writes=True),
    case("start-1e999", *START, '{"a": 1e999}', expect="is inf", writes=True),
    case("start-huge-int", *START, '{"a": 1' + "0" * 30 + "}", expect="64 bits", writes=True),
    case("start-not-utf8", *START, '"\udcff"', expect="not valid UTF-8", usage=True),
    case("start-too-large", *START, BIG, expect="the limit is 2000", env=SMALL_LIMIT, writes=True),
    case("start-unknown-flow", "start", "no-such-flow", expect="unknown flow", writes=True),
    case("start-flow-newline", "start", "example-flow\n", expect="unknown flow", writes=True),
    case(
        "start-model-mismatch",
        "start",
        "order",
        "--input",
        '{"order_id": 1}',
        expect="does not fit Order",
        writes=True,
    ),
    # -- unknown and malformed run ids -------------------------------------------------
    case("show-unknown-run", "show", "0190a4e2-0000-7000-8000-000000000000", expect="no run"),
    case("events-unknown-run", "events", "no-such-run", expect="no run"),
    case("tail-unknown-run", "tail", "no-such-run", expect="no run"),
    case("cancel-unknown-run", "cancel", "no-such-run", expect="no run", writes=True),
    case("show-run-newline", "show", "{run}\n", expect="is not valid"),
    case("show-run-braces", "show", "a{b}c", expect="is not valid"),
    case("events-run-braces", "events", "a{b}c", expect="is not valid"),
    case("tail-run-braces", "tail", "a{b}c", expect="is not valid"),
    case("cancel-run-braces", "cancel", "a{b}c", expect="is not valid", writes=True),
    case("show-run-not-utf8", "show", "\udcff", expect="not valid UTF-8", usage=True),
    case("cancel-run-newline", "cancel", "abc\n", expect="is not valid", writes=True),
    case("cancel-run-200-chars", "cancel", "r" * 200, expect="is not valid", writes=True),
    case("show-run-200-chars", "show", "r" * 200, expect="is not valid"),
    case("cancel-ended-run", "cancel", "{run}", expect="has ended already", writes=True),
    # -- cursors -----------------------------------------------------------------------
    case("events-after-garbage", "events", "{run}", "--after", "garbage", expect="event id"),
    case(
        "events-after-out-of-range",
        "events",
        "{run}",
        "--after",
        "99999999999999999999-0",
        expect="event id",
    ),
    case("tail-after-garbage", "tail", "{run}", "--after", "garbage", expect="event id"),
    case(
        "tail-after-out-of-range",
        "tail",
        "{run}",
        "--after",
        "99999999999999999999-0",
        expect="event id",
    ),
    case("runs-before-garbage", "runs", "example-flow", "--before", "garbage", expect="no run"),
    case("runs-all-before-garbage", "runs", "--before", "garbage", expect="no run"),
    case("runs-limit-0", "runs", "example-flow", "--limit", "0", expect="--limit", usage=True),
    case(
        "runs-limit-5000", "runs", "example-flow", "--limit", "5000", expect="--limit", usage=True
    ),
    case("runs-unknown-flow", "runs", "no-such-flow", expect="unknown flow"),
    # -- waiting -----------------------------------------------------------------------
    case("start-timeout-without-wait", *START, "{}", "--timeout", "5", expect="--wait", usage=True),
    case(
        "start-timeout-zero",
        *START,
        "{}",
        "--wait",
        "--timeout",
        "0",
        expect="--timeout",
        usage=True,
    ),
    case(
        "tail-timeout-negative", "tail", "{run}", "--timeout", "-1", expect="--timeout", usage=True
    ),
    *(
        case(
            f"start-timeout-{name}",
            *START,
            "{}",
            "--wait",
            "--timeout",
            value,
            expect=expect,
            usage=True,
            writes=True,
        )
        for name, value, expect in (
            ("nan", "nan", "'nan' is not a number of seconds"),
            ("inf", "inf", "is not in the range"),
            ("1e309", "1e309", "is not in the range"),
            ("over-a-year", "31536001", "is not in the range"),
        )
    ),
    # -- emit and resume ---------------------------------------------------------------
    case("signal-name-newline", "signal", "probe.nl\n", expect="is not valid", writes=True),
    case("signal-name-braces", "signal", "a{b}", expect="is not valid", writes=True),
    case(
        "signal-bad-json", "signal", "probe.x", "--data", "{x", expect="not valid JSON", usage=True
    ),
    case(
        "signal-200-deep",
        "signal",
        "probe.x",
        "--data",
        nested(200),
        expect="deeper than the limit",
        writes=True,
    ),
    case(
        "signal-lone-surrogate",
        "signal",
        "probe.x",
        "--data",
        '"\\udfff"',
        expect="must come in pairs",
        usage=True,
    ),
    case("signal-nan", "signal", "probe.x", "--data", "NaN", expect="NaN and Infinity", usage=True),
    case(
        "signal-too-large",
        "signal",
        "probe.big",
        "--data",
        BIG,
        expect="the limit is 2000",
        env=SMALL_LIMIT,
        writes=True,
    ),
    case("resume-unknown", "resume", "no-such-trigger", expect="unknown or expired", writes=True),
    case("resume-newline", "resume", "t\n", expect="unknown or expired", writes=True),
    case("resume-braces", "resume", "{t}", expect="unknown or expired", writes=True),
    case(
        "resume-200-deep",
        "resume",
        "t",
        "--data",
        nested(200),
        expect="deeper than the limit",
        writes=True,
    ),
    # -- unreachable services, malformed URLs, bad settings -----------------------------
    case(
        "show-redis-unreachable",
        "show",
        "some-run",
        expect=f"cannot reach Redis at {UNREACHABLE}",
        env={"FLOWQUEUE_REDIS_URL": UNREACHABLE},
    ),
    case(
        "start-redis-unreachable",
        *START,
        "{}",
        expect=f"cannot reach Redis at {UNREACHABLE}",
        env={"FLOWQUEUE_REDIS_URL": UNREACHABLE},
    ),
    case(
        "tail-redis-unreachable",
        "tail",
        "some-run",
        expect="cannot reach Redis",
        env={"FLOWQUEUE_REDIS_URL": UNREACHABLE},
    ),
    case(
        "redis-password-redacted",
        "events",
        "some-run",
        expect="redis://:***@127.0.0.1:9/0",
        env={"FLOWQUEUE_REDIS_URL": "redis://:hunter2@127.0.0.1:9/0"},
    ),
    case(
        "start-broker-unreachable",
        *START,
        "{}",
        expect="cannot reach the Celery broker at redis://127.0.0.1:9/0",
        env={"CELERY_BROKER_URL": UNREACHABLE},
        writes=True,
    ),
    case(
        "signal-broker-unreachable",
        "signal",
        "probe.ok",
        expect="cannot reach the Celery broker",
        env={"CELERY_BROKER_URL": "amqp://guest@127.0.0.1:9//"},
        writes=True,
    ),
    case(
        "start-broker-bad-transport",
        *START,
        "{}",
        expect="broker URL 'nonsense://' is not usable",
        env={"CELERY_BROKER_URL": "nonsense://"},
        writes=True,
    ),
    case(
        "url-no-scheme",
        "show",
        "some-run",
        expect="'nonsense' is not a Redis URL",
        env={"FLOWQUEUE_REDIS_URL": "nonsense"},
    ),
    case(
        "url-port-not-a-number",
        *START,
        "{}",
        expect="is not a Redis URL",
        env={"FLOWQUEUE_REDIS_URL": "redis://host:notaport/0"},
    ),
    case(
        "url-http",
        "events",
        "some-run",
        expect="is not a Redis URL",
        env={"FLOWQUEUE_REDIS_URL": "http://x"},
    ),
    case(
        "url-database-not-a-number",
        "signal",
        "probe.ok",
        expect="is not a Redis URL",
        env={"FLOWQUEUE_REDIS_URL": "redis://127.0.0.1:9/abc"},
    ),
    case(
        "url-bad-port-with-password",
        "events",
        "some-run",
        expect="is not a Redis URL",
        env={"FLOWQUEUE_REDIS_URL": "redis://:hunter2@127.0.0.1:99999999/0"},
    ),
    case(
        "url-not-a-url-api",
        "api",
        "--port",
        "0",
        expect="'notaurl' is not a Redis URL",
        env={"FLOWQUEUE_REDIS_URL": "notaurl"},
    ),
    case(
        "url-port-too-big-api",
        "api",
        "--port",
        "0",
        expect="'redis://:99999999' is not a Redis URL",
        env={"FLOWQUEUE_REDIS_URL": "redis://:99999999"},
    ),
    case(
        "setting-not-a-number",
        "show",
        "some-run",
        expect="FLOWQUEUE_MAX_PAYLOAD_BYTES='abc' is not valid",
        env={"FLOWQUEUE_MAX_PAYLOAD_BYTES": "abc"},
    ),
    case(
        "setting-bad-prefix",
        *START,
        "{}",
        expect="FLOWQUEUE_KEY_PREFIX='a b' is not valid",
        env={"FLOWQUEUE_KEY_PREFIX": "a b"},
    ),
    # -- loading the app -----------------------------------------------------------------
    case(
        "app-no-module", "-A", "bad:path", "show", "x", expect="cannot load 'bad:path'", usage=True
    ),
    case("app-not-celery", "-A", "os:path", "flows", expect="flowqueue is not installed"),
    case(
        "app-from-env",
        "flows",
        expect="cannot load 'bad:path'",
        env={"FLOWQUEUE_APP": "bad:path"},
        usage=True,
    ),
    case(
        "workers-missing-start",
        *START,
        "{}",
        expect="FLOWQUEUE_WORKERS",
        env={"FLOWQUEUE_WORKERS": "workers,no_such_pkg"},
        writes=True,
    ),
    # -- the API's options ---------------------------------------------------------------
    case("api-port-too-big", "api", "--port", "99999", expect="--port", usage=True),
    case("api-port-negative", "api", "--port", "-1", expect="--port", usage=True),
]
assert len({c.id for c in CASES}) == len(CASES)


@dataclass
class Battery:
    url: str
    prefix: str  # of the seeded runs
    runs: dict[str, str]
    seeded_keys: set[bytes]
    results: dict[str, tuple[subprocess.CompletedProcess[str], str]]  # and the case's prefix

    def env(self, prefix: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWQUEUE_", "CELERY_"))}
        env |= {
            "FLOWQUEUE_REDIS_URL": self.url,
            "FLOWQUEUE_KEY_PREFIX": prefix,
            "FLOWQUEUE_WORKERS": WORKERS,
        }
        return env | extra


def run_cli(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWQUEUE, *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=90,
    )


def seed(url: str, prefix: str) -> dict[str, str]:
    """A completed and a failed run (run eagerly here) and one that never ends."""
    settings = Settings(redis_url=url, key_prefix=prefix, workers=WORKERS)
    eager = create_app(settings)
    eager.conf.task_always_eager = True
    lazy = create_app(settings)  # no worker serves this database: its run stays running
    try:
        runs = {
            "run": start_flow("example-flow", {}, app=eager),
            "failed": start_flow("refund", {"amount": 3}, app=eager),
            "running": start_flow("example-flow", {}, app=lazy),
        }
        assert get_run(runs["run"], app=eager).status.value == "completed"
        assert get_run(runs["failed"], app=eager).status.value == "failed"
        return runs
    finally:
        flowqueue_of(eager).store.close()
        flowqueue_of(lazy).store.close()


@pytest.fixture(scope="module")
def battery(redis_server: Any, request: pytest.FixtureRequest) -> Iterator[Battery]:
    url = own_database(redis_server.url)
    client = redis.Redis.from_url(url)
    prefix = f"c{uuid.uuid4().hex[:10]}"
    runs = seed(url, prefix)
    done = Battery(url, prefix, runs, set(client.keys("*")), {})
    # Run only the cases pytest selected, a few at a time (each is a whole interpreter).
    chosen = [
        item.callspec.params["bad"]
        for item in request.session.items
        if item.module is request.module
        and hasattr(item, "callspec")
        and isinstance(item.callspec.params.get("bad"), Case)
    ]

    def run(bad: Case) -> tuple[str, tuple[subprocess.CompletedProcess[str], str]]:
        own = prefix if bad.seeded else f"b{uuid.uuid4().hex[:10]}"
        return bad.id, (run_cli(bad.args(runs), done.env(own, **bad.env)), own)

    with ThreadPoolExecutor(max_workers=3) as pool:
        done.results = dict(pool.map(run, chosen))
    yield done
    client.flushdb()
    client.close()


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_a_bad_command_prints_one_line_and_exits_non_zero(bad: Case, battery: Battery) -> None:
    result, prefix = battery.results[bad.id]
    shown = f"exit {result.returncode}\nstdout: {result.stdout[:500]}\nstderr: {result.stderr}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, shown
    assert "Traceback" not in result.stdout + result.stderr, shown
    assert "unexpected error" not in result.stderr, shown
    assert "hunter2" not in result.stdout + result.stderr, shown
    if bad.usage:  # click: "Usage: ...", "Try ...", then one "Error: ..." line
        assert result.returncode == 2, shown
        assert lines[-1].startswith("Error: "), shown
        assert [line for line in lines if line.startswith("Error")] == lines[-1:], shown
    else:
        assert result.returncode == 1, shown
        assert len(lines) == 1, shown
        assert lines[0].startswith("Error: "), shown
    assert bad.expect in lines[-1], shown
    if bad.writes:  # its prefix holds what was seeded there (mostly nothing), no more
        before = {key for key in battery.seeded_keys if key.startswith(prefix.encode())}
        client = redis.Redis.from_url(battery.url)
        try:
            assert set(client.keys(f"{prefix}*")) == before, shown
        finally:
            client.close()


def test_the_bad_commands_wrote_nothing_at_all(battery: Battery) -> None:
    """Not under any prefix, and no Celery message either (no queue appeared)."""
    client = redis.Redis.from_url(battery.url)
    try:
        assert set(client.keys("*")) == battery.seeded_keys
    finally:
        client.close()


def test_tail_exits_by_the_runs_outcome_with_nothing_on_stderr(battery: Battery) -> None:
    env = battery.env(battery.prefix)
    completed = run_cli(["tail", battery.runs["run"]], env)
    assert (completed.returncode, completed.stderr) == (0, ""), completed.stderr
    assert "flow.completed" in completed.stdout.splitlines()[-1]
    failed = run_cli(["tail", battery.runs["failed"], "--json"], env)
    assert (failed.returncode, failed.stderr) == (1, ""), failed.stderr
    assert json.loads(failed.stdout.splitlines()[-1])["kind"] == "flow.failed"
    after_last = json.loads(run_cli(["events", battery.runs["run"]], env).stdout.splitlines()[-1])
    empty = run_cli(["events", battery.runs["run"], "--after", after_last["id"]], env)
    assert (empty.returncode, empty.stdout, empty.stderr) == (0, "", "")  # a known run: no error


def test_ctrl_c_exits_130_quietly(battery: Battery) -> None:
    tail = subprocess.Popen(
        [FLOWQUEUE, "tail", battery.runs["running"]],
        cwd=ROOT,
        env=battery.env(battery.prefix),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tail.stdout is not None
        assert "flow.started" in tail.stdout.readline()  # it is following the live run
        tail.send_signal(signal.SIGINT)
        _, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
    assert tail.returncode == 130, err
    # No worker serves this database: that one warning, then nothing of the interrupt.
    assert [line for line in err.splitlines() if line.strip()] == [NO_WORKER], err


def test_an_unexpected_error_is_one_line_unless_tracebacks_are_asked_for(
    battery: Battery, tmp_path: Path
) -> None:
    (tmp_path / "boom_flows.py").write_text("raise RuntimeError('boom at import')\n")
    env = battery.env(f"b{uuid.uuid4().hex[:10]}", FLOWQUEUE_WORKERS="boom_flows")
    env["PYTHONPATH"] = str(tmp_path)
    quiet = run_cli(["flows"], env)
    assert quiet.returncode == 2
    assert quiet.stderr.strip() == (
        "flowqueue: unexpected error RuntimeError: boom at import "
        "(set FLOWQUEUE_TRACEBACK=1 to see the traceback)"
    )
    loud = run_cli(["flows"], env | {"FLOWQUEUE_TRACEBACK": "1"})
    assert loud.returncode == 2
    assert "Traceback (most recent call last)" in loud.stderr
    assert "boom_flows.py" in loud.stderr
    assert loud.stderr.strip().splitlines()[-1].startswith("flowqueue: unexpected error")
