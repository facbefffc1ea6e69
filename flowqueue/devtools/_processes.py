"""Child processes of ``flowqueue dev``: each in a process group of its own, its output in
a log file, stopped together (TERM, then KILL of the whole group) and checked gone."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path


class Child:
    """One command (``name`` in messages) started by ``start``; ``start`` again after it
    ended starts it anew, appending to the same log."""

    def __init__(
        self, name: str, command: Sequence[str], env: dict[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.command = list(command)
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.expected_exit = False  # set by terminate(): the exit was asked for
        self._log_start = 0  # where this start's output begins in the log

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.process.pid

    def start(self) -> Child:
        self.expected_exit = False
        with self.log_path.open("ab") as log:
            self._log_start = log.tell()
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own group: Ctrl-C in the terminal reaches only dev, which stops the
                # group as a whole (a worker's pool processes too).
                start_new_session=True,
            )
        return self

    def exit_code(self) -> int | None:
        """None while it runs (or was never started)."""
        return None if self.process is None else self.process.poll()

    def output(self) -> str:
        """What this start has printed so far."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.output().rstrip().splitlines()[-lines:])

    def terminate(self) -> None:
        """Ask the group's leader to stop (a Celery worker's warm shutdown)."""
        self.expected_exit = True
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def kill_group(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):  # the group is gone already
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def group_alive(self) -> bool:
        return self.process is not None and bool(live_members(self.process.pid))


def live_members(group: int) -> list[int]:
    """Processes of process group ``group`` that are not zombies (a zombie waits only to
    be reaped by its parent; it runs nothing)."""
    proc = Path("/proc")
    if not proc.is_dir():  # no /proc (macOS): any member, zombie or not, counts
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return []
        return [group]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended while we looked
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after its ")".
        fields = stat.rpartition(")")[2].split()
        if fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(entry.name))
    return members


def wait_for(done: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True


def stop_all(children: Iterable[Child], grace: float) -> list[str]:
    """TERM every leader at once, KILL every group after ``grace`` seconds (at once if all
    leaders are gone: their leftover pool processes too); the names of children whose
    groups still have a live process after that."""
    started = [child for child in children if child.process is not None]
    for child in started:
        child.terminate()
    wait_for(lambda: all(child.exit_code() is not None for child in started), grace)
    for child in started:
        child.kill_group()
    wait_for(lambda: not any(child.group_alive() for child in started), 2.0)
    return [child.name for child in started if child.group_alive()]
