"""``flowqueue.testing``: a pytest plugin for testing your own flows on a real worker.

pytest loads it wherever flowqueue is installed (``-p no:flowqueue`` turns it off), so
importing it starts nothing: every fixture is lazy, and the session's Redis and worker
start only when a test asks for them. It sits next to pytest-celery and follows its
conventions: session fixtures you redefine in your ``conftest.py`` configure the app and
the worker (as ``celery_config`` and ``celery_worker_parameters`` do), and the worker is
a process of its own, started as you run it in production.

| fixture | scope | what it is |
| --- | --- | --- |
| ``flowqueue_redis_url`` | session | a throwaway ``redis-server`` (redefine: another Redis) |
| ``flowqueue_settings`` | session | settings for the app and the worker, by field name (``{}``) |
| ``flowqueue_worker_args`` | session | more ``celery worker`` arguments (``["-c", "2"]``) |
| ``flowqueue_app`` | session | a Celery app with flowqueue on that Redis, a key prefix of its own |
| ``flowqueue_worker`` | session | ``celery -A flowqueue worker``, run in the project directory |
| ``run_flow`` | test | ``run_flow(flow, input) -> RunState`` once the run has ended |

The ini option ``flowqueue_workers`` names the packages of your flows
(``FLOWQUEUE_WORKERS``; default: the environment's, else ``workers``). The project
directory is pytest's rootdir, where your ``celeryconfig.py`` is read from too.

The top layer: may import everything below it, ``devtools`` (the worker process) included.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from flowqueue.backend.redis.embedded import EmbeddedRedis
from flowqueue.errors import ConfigurationError, RunTimeout
from flowqueue.runtime.app import create_app
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.settings import MEMORY_URL, Settings
from flowqueue.testing._runs import RunFlow, Until, awaiting, ended
from flowqueue.testing._worker import Worker, start_worker

WORKERS_INI = "flowqueue_workers"
WORKER_START_TIMEOUT = 60.0  # seconds; a cold start on a busy machine takes several


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        WORKERS_INI,
        "flowqueue: packages or modules of your flows, comma-separated (FLOWQUEUE_WORKERS)",
        default="",
    )


@pytest.fixture(scope="session")
def flowqueue_redis_url() -> Iterator[str]:
    """A ``redis-server`` of this session's own on a free port (from ``PATH`` or the
    ``flowqueue[embedded]`` extra), stopped at the end; the broker and the store."""
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture(scope="session")
def flowqueue_settings() -> dict[str, Any]:
    """Redefine to change settings for the test app and worker, e.g.
    ``{"retry_delay": 0.1}`` (field names of ``flowqueue.Settings``)."""
    return {}


@pytest.fixture(scope="session")
def flowqueue_worker_args() -> list[str]:
    """Redefine to pass more arguments to the test worker, e.g. ``["-Q", "orders"]``."""
    return ["-c", "2"]


@pytest.fixture(scope="session")
def flowqueue_app(
    pytestconfig: pytest.Config, flowqueue_redis_url: str, flowqueue_settings: dict[str, Any]
) -> Iterator[Any]:
    """A Celery app with flowqueue installed, on the session's Redis, with a key prefix
    of its own; your flows are imported, and ``celeryconfig.py`` read, from the project
    directory (as the worker does). Closed at the end of the session."""
    values: dict[str, Any] = {"redis_url": flowqueue_redis_url, "key_prefix": _prefix()}
    if workers := str(pytestconfig.getini(WORKERS_INI)).strip():
        values["workers"] = workers
    values.update(flowqueue_settings)
    with pytest.MonkeyPatch.context() as patch:
        # Celery sends to CELERY_BROKER_URL whatever the app says: never to a real broker.
        patch.delenv("CELERY_BROKER_URL", raising=False)
        with contextlib.chdir(pytestconfig.rootpath):
            app = create_app(Settings(**values))
            fq = flowqueue_of(app)
            flows = fq.flows.flows  # imports the flow modules: an error names the module
        if not flows:
            raise ConfigurationError(
                f"no flows found in FLOWQUEUE_WORKERS={fq.settings.workers!r} from "
                f"{pytestconfig.rootpath}; name your flow packages with the ini option "
                f"{WORKERS_INI} (e.g. {WORKERS_INI} = myproject.flows)."
            )
        try:
            yield app
        finally:
            fq.close()


@pytest.fixture(scope="session")
def flowqueue_worker(
    pytestconfig: pytest.Config,
    tmp_path_factory: pytest.TempPathFactory,
    flowqueue_app: Any,
    flowqueue_worker_args: list[str],
) -> Iterator[Worker]:
    """A real ``celery -A flowqueue worker`` process serving your flows, run from the
    project directory with the app's settings; stopped (warm shutdown) at the end."""
    settings = flowqueue_of(flowqueue_app).settings
    if settings.redis_url == MEMORY_URL:
        raise ConfigurationError(
            "the test worker cannot share memory:// (a Redis private to one process): leave "
            "redis_url out of flowqueue_settings, or redefine flowqueue_redis_url instead."
        )
    log_path = tmp_path_factory.mktemp("flowqueue-worker") / "worker.log"
    worker = start_worker(
        settings, pytestconfig.rootpath, log_path, flowqueue_worker_args, WORKER_START_TIMEOUT
    )
    try:
        yield worker
    finally:
        worker.process.stop()


@pytest.fixture
def run_flow(flowqueue_app: Any, flowqueue_worker: Worker) -> RunFlow:
    """``run_flow(flow, input, timeout=30.0)`` starts a run on the test worker and returns
    its ``RunState`` once it has ended; ``RunTimeout`` (with the run's last events and
    the worker's log) when it does not. ``run_flow.start`` and ``run_flow.wait(run_id,
    until=awaiting("step"))`` split it for runs that wait for a signal or a trigger."""
    return RunFlow(flowqueue_app, flowqueue_worker)


def _prefix() -> str:
    return f"fqtest-{uuid.uuid4().hex[:10]}"  # the worker's node name too


__all__ = [
    "RunFlow",
    "RunTimeout",
    "Until",
    "Worker",
    "awaiting",
    "ended",
    "flowqueue_app",
    "flowqueue_redis_url",
    "flowqueue_settings",
    "flowqueue_worker",
    "flowqueue_worker_args",
    "run_flow",
]
