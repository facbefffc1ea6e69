"""Real ``celery -A flowqueue worker`` processes for end-to-end tests.

Each ``Cluster`` gets its own Redis database (broker queue and event logs) and key
prefix on the session's throwaway redis-server, so clusters never steal each other's
messages.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flowqueue import create_app
from flowqueue.devtools.worker import WorkerProcess
from flowqueue.model.events import TERMINAL_KINDS, Event
from flowqueue.runtime.engine import flowqueue_of
from flowqueue.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
_databases = itertools.count(1)  # db 0 belongs to the store-level tests


def own_database(redis_url: str) -> str:
    """``redis_url`` with a database no other test of this session uses."""
    return f"{redis_url.rsplit('/', 1)[0]}/{next(_databases)}"


def start_worker(env: dict[str, str], name: str, concurrency: int, log_dir: Path) -> WorkerProcess:
    args = ["-P", "prefork", "-c", str(concurrency), "-n", f"{name}@%h"]
    args += ["--without-mingle", "--without-gossip"]
    return WorkerProcess(env, log_dir / f"{name}.log", args, cwd=ROOT).wait_ready(30)


class Cluster:
    """Workers plus a client-side app that share one database and key prefix."""

    def __init__(self, redis_url: str, log_dir: Path, **settings: Any) -> None:
        self.url = own_database(redis_url)
        self.prefix = f"e{uuid.uuid4().hex[:10]}"
        self.log_dir = log_dir
        self.env = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},  # as a user runs it
            "FLOWQUEUE_REDIS_URL": self.url,
            "FLOWQUEUE_KEY_PREFIX": self.prefix,
            "FLOWQUEUE_WORKERS": "workers,tests.flows",
            **{f"FLOWQUEUE_{k.upper()}": str(v) for k, v in settings.items()},
        }
        self.settings = Settings(
            redis_url=self.url, key_prefix=self.prefix, workers="workers,tests.flows", **settings
        )
        self.app = create_app(self.settings)
        self.fq = flowqueue_of(self.app)
        self.workers: list[WorkerProcess] = []
        self._names = itertools.count(1)
        self._supervisor: threading.Thread | None = None
        self._closing = threading.Event()
        self.restarts = 0
        self._concurrency: dict[int, int] = {}

    def start_worker(self, concurrency: int = 2) -> WorkerProcess:
        name = f"w{next(self._names)}-{self.prefix}"
        worker = start_worker(self.env, name, concurrency, self.log_dir)
        self._concurrency[id(worker)] = concurrency
        self.workers.append(worker)
        return worker

    def supervise(self, interval: float = 0.2) -> None:
        """Restart any worker that exits on its own, as systemd or supervisord would in
        production (kombu's Redis transport can exit the worker when Redis restarts)."""

        def loop() -> None:
            while not self._closing.wait(interval):
                for index, worker in enumerate(list(self.workers)):
                    if worker.process.poll() is not None and not worker.stopped:
                        name = f"w{next(self._names)}-{self.prefix}"
                        concurrency = self._concurrency[id(worker)]
                        fresh = start_worker(self.env, name, concurrency, self.log_dir)
                        self._concurrency[id(fresh)] = concurrency
                        self.workers[index] = fresh
                        self.restarts += 1

        self._supervisor = threading.Thread(target=loop, name="supervisor", daemon=True)
        self._supervisor.start()

    def command(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a command (``celery ...``, ``flowqueue ...``) in the cluster's environment."""
        return subprocess.run(
            list(argv), cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60
        )

    def flowqueue(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the ``flowqueue`` CLI of this environment."""
        return self.command(str(Path(sys.executable).parent / "flowqueue"), *args)

    @staticmethod
    def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def started_step(self, run_id: str, timeout: float = 30.0) -> None:
        """Wait until the run's first step has logged something (it is mid-step)."""
        store = self.fq.store
        self.wait_for(lambda: any(e.kind == "log" for e in store.read(run_id)), "a log", timeout)

    def wait_terminal(self, run_id: str, timeout: float = 30.0) -> list[Event]:
        """The run's log once it holds a terminal event."""
        store, log = self.fq.store, list[Event]()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log += store.read(run_id, after=log[-1].id if log else None)
            if any(event.kind in TERMINAL_KINDS for event in log):
                time.sleep(0.2)  # let stragglers (late step events) land too
                return store.read(run_id)
            time.sleep(0.05)
        raise TimeoutError(f"run {run_id} did not end within {timeout}s: {log}")

    def wait_all(self, run_ids: Iterable[str], timeout: float = 60.0) -> dict[str, list[Event]]:
        deadline = time.monotonic() + timeout
        return {
            run: self.wait_terminal(run, max(1.0, deadline - time.monotonic())) for run in run_ids
        }

    def close(self) -> None:
        self._closing.set()
        if self._supervisor is not None:
            self._supervisor.join(60)
        for worker in self.workers:
            worker.stop()
        self.fq.store.close()
