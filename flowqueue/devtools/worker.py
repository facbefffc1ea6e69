"""A ``celery -A flowqueue worker`` subprocess (for ``make demo``, benchmarks and tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


class WorkerProcess:
    """Starts a worker with its output in ``log_path``; ``wait_ready`` blocks until Celery
    reports ready; ``stop`` asks for a warm shutdown, ``kill`` SIGKILLs its whole pool."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        args: Sequence[str] = (),
        cwd: Path | None = None,
        celery: Path | None = None,
    ) -> None:
        self.log_path = log_path
        self.stopped = False  # set by stop() / kill(): the exit was asked for
        self._log = log_path.open("wb")
        # The console script, as the README runs it (not `python -m celery`, which puts the
        # working directory on sys.path and so hid a worker that served no flows).
        # `celery` names another venv's script (default: the one beside this Python).
        script = str(celery or Path(sys.executable).with_name("celery"))
        command = [script, "-A", "flowqueue", "worker", "-l", "INFO"]
        self.process = subprocess.Popen(
            [*command, *args],
            cwd=cwd,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kill() reaches the pool too
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> WorkerProcess:
        deadline = time.monotonic() + timeout
        while " ready." not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"the Celery worker did not start; its log:\n{self.log()}")
            time.sleep(0.1)
        return self

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes: no cleanup, no acks."""
        self.stopped = True
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._log.close()

    def stop(self, timeout: float = 20.0) -> None:
        self.stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def __enter__(self) -> WorkerProcess:
        return self.wait_ready()

    def __exit__(self, *_: object) -> None:
        self.stop()
