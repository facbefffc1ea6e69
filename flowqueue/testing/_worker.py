"""The test worker: ``celery -A flowqueue worker`` run as a user runs it, from the project
directory, with the settings of the test app passed as ``FLOWQUEUE_*`` variables."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from celery.utils.nodenames import host_format
from pydantic import SecretStr

from flowqueue.devtools.worker import WorkerProcess
from flowqueue.settings import Settings

LOG_TAIL = 20  # lines of the worker's log an error quotes


@dataclass(frozen=True)
class Worker:
    """The session's worker process. ``hostname`` is its Celery node name (``name@host``,
    as ``step.started`` events record it); ``env`` its environment, for running other
    commands (``flowqueue``, ``celery inspect``) against the test app."""

    process: WorkerProcess
    hostname: str
    env: dict[str, str]

    @property
    def running(self) -> bool:
        return self.process.process.poll() is None

    def log(self) -> str:
        return self.process.log()

    def describe(self, *, log_tail: bool = True) -> str:
        """One line on its state, then (``log_tail``) the end of its log, for errors."""
        code = self.process.process.poll()
        state = "is running" if code is None else f"exited with code {code}"
        head = f"worker {self.hostname} {state}; its log: {self.process.log_path}"
        if not log_tail:
            return head
        tail = self.log().rstrip().splitlines()[-LOG_TAIL:]
        return "\n".join([f"{head}, which ends:", *("  " + line for line in tail)])


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``FLOWQUEUE_*`` variables that give another process these settings: every field
    set explicitly or read from the environment (the rest are defaults either way)."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(include=settings.model_fields_set).items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"FLOWQUEUE_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env


def worker_env(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with its own ``FLOWQUEUE_*`` variables replaced by ``settings``; without
    ``CELERY_BROKER_URL``, which Celery prefers to any configured broker."""
    kept = {
        key: value
        for key, value in base.items()
        if not key.startswith("FLOWQUEUE_") and key != "CELERY_BROKER_URL"
    }
    return {**kept, **settings_env(settings)}


def start_worker(
    settings: Settings, project: Path, log_path: Path, args: Sequence[str], timeout: float
) -> Worker:
    """Start the worker in ``project`` and wait until Celery reports it ready (its flows
    imported: a flow module that fails to import stops it, and its log says why)."""
    name = f"{settings.key_prefix}@%h"
    fixed = ["-n", name, "--without-mingle", "--without-gossip"]  # no other worker to sync with
    env = worker_env(settings, os.environ)
    process = WorkerProcess(env, log_path, [*fixed, *args], cwd=project)
    return Worker(process.wait_ready(timeout), host_format(name), env)
