"""``flowqueue dev``: everything for developing flows, in one terminal.

Redis (``FLOWQUEUE_REDIS_URL``, else an embedded redis-server on a free port), a Celery
worker started as users start it (``celery -A flowqueue worker``) that restarts when a
flow file changes, the API with the dashboard (``flowqueue api``), Flower when it is
installed, and the example runs of ``make demo``. Each child runs in a process group of
its own with its output in a log file; Ctrl-C or SIGTERM stops them all.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from flowqueue.devtools._examples import Examples
from flowqueue.devtools._reload import Reloader, watched_for
from flowqueue.devtools._stack import DEFAULT_WORKERS, DevError, DevOptions, Stack

STOP_GRACE = 3.0  # seconds for a warm shutdown when stopping; then KILL (all within 5 s)


def run_dev(options: DevOptions) -> int:
    """Run until Ctrl-C, SIGTERM or ``exit_after``; 0 once everything stopped and no
    process is left. Raises ``DevError`` (after stopping what did start) when something
    does not start."""
    stack = Stack(options)
    with _StopOnSignals() as stopping:
        try:
            _run(stack, stopping.event)
        finally:
            left = _stop(stack, stopping.received)
    return 1 if left else 0


def _run(stack: Stack, stop: threading.Event) -> None:
    stack.start(stop)
    if stop.is_set():
        return
    _banner(stack)
    with contextlib.ExitStack() as cleanup:
        if stack.options.examples:
            examples = _examples(stack)
            if examples is not None:
                cleanup.callback(examples.close)
        reloader = Reloader(watched_for(stack.workers, Path.cwd())).start()
        cleanup.callback(reloader.stop)
        where = reloader.watched.describe(Path.cwd()) or "nothing (no flow module found)"
        print(f"watching {where} ({reloader.engine}); Ctrl-C stops everything", flush=True)
        _loop(stack, reloader, stop, stack.options.exit_after)


def _loop(
    stack: Stack, reloader: Reloader, stop: threading.Event, exit_after: float | None
) -> None:
    deadline = None if exit_after is None else time.monotonic() + exit_after
    while not stop.wait(0.1):
        if deadline is not None and time.monotonic() >= deadline:
            print(f"stopping: --exit-after {exit_after:g} s passed", flush=True)
            return
        changed = reloader.changed()
        if changed:
            names = ", ".join(sorted(_relative(p) for p in changed))
            print(f"reload: {names} changed; restarting the worker and the API", flush=True)
            stack.reload(stop)
        stack.report_exits()


def _examples(stack: Stack) -> Examples | None:
    """The example runs, on the default app and workers package only."""
    if stack.options.app_path is not None or stack.workers != DEFAULT_WORKERS:
        return None
    examples = Examples(stack.redis_url)
    missing = examples.missing()
    if missing:
        examples.close()
        print(f"examples: none started (workers/ has no {', '.join(missing)})", flush=True)
        return None
    print(examples.start(), flush=True)
    return examples


def _banner(stack: Stack) -> None:
    print(flush=True)
    print(f"  Dashboard  {stack.api_url}/", flush=True)
    print(f"  API docs   {stack.api_url}/docs", flush=True)
    if stack.flower_url:
        print(f"  Flower     {stack.flower_url}/", flush=True)
    print(flush=True)


def _stop(stack: Stack, received: str | None) -> list[str]:
    if not stack.started:
        return []  # it failed before starting anything
    why = f"{received}: " if received else ""
    print(f"{why}stopping the worker, the API, Flower and Redis ...", flush=True)
    left = stack.stop(STOP_GRACE)
    if left:
        print(f"!! still running after the stop: {', '.join(left)}", file=sys.stderr, flush=True)
    else:
        print(f"stopped; no process left behind (logs stay in {stack.logs}/)", flush=True)
    return left


def _relative(path: Path) -> str:
    cwd = Path.cwd()
    return str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)


class _StopOnSignals:
    """Within ``with``: SIGINT and SIGTERM set ``event`` instead of raising, so dev stops
    its children in order; the previous handlers come back afterwards."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: str | None = None  # the signal's name
        self._previous: list[Callable[[int, FrameType | None], object] | int | None] = []

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        # No printing here: the handler may interrupt a print of the main thread.
        self.received = self.received or signal.Signals(signum).name
        self.event.set()

    def __enter__(self) -> _StopOnSignals:
        self._previous = [signal.signal(s, self._handle) for s in self.SIGNALS]
        return self

    def __exit__(self, *_: object) -> None:
        for signum, previous in zip(self.SIGNALS, self._previous, strict=True):
            signal.signal(signum, previous)


__all__ = ["DevError", "DevOptions", "run_dev"]
