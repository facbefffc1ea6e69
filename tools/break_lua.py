"""Break the Lua scripts on purpose, one line at a time, and check that the tests notice.

Each entry of ``BREAKS`` names a script in ``flowqueue/backend/redis/lua/``, one exact line
of it, the broken line, the tests expected to catch the break (by failing) and why the line
matters. The script is restored after every run (in a ``finally``, also on Ctrl-C, SIGTERM
and SIGHUP) and checked against its original SHA-256; a mismatch stops the harness loudly.

The breaks are made in a scratch copy of the tree (PYTHONPATH points at it, so the celery
workers and API processes the tests start load the broken script too), so anyone testing
the working tree meanwhile never sees a broken script; ``--in-place`` breaks the tree itself.

    make mutate-lua                       # every break, then a score table
    python tools/break_lua.py --list      # the table, without running anything
    python tools/break_lua.py --only begin_step.timer_claim --only emit.join_ready

Never part of ``make test``: a run takes minutes and changes files while it runs.
"""

from __future__ import annotations

import argparse
import atexit
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
LUA = Path("flowqueue/backend/redis/lua")
FAST = ("-m", "not e2e")


@dataclass(frozen=True)
class Break:
    name: str
    file: str  # relative to flowqueue/backend/redis/lua/
    line: str  # one exact, whole line of the file (it must occur exactly once)
    broken: str
    tests: tuple[str, ...]  # pytest arguments: the selection expected to fail
    why: str


G = "tests/test_guarantees.py"
LEDGER = "tests/test_coordinator.py"

BREAKS: tuple[Break, ...] = (
    Break(
        "begin_step.timer_claim",
        "begin_step.lua",
        "  if redis.call('ZREM', K.timers, timer) + redis.call('ZREM', K.handed, timer) == 0 then",
        "  if redis.call('ZREM', K.timers, timer) + redis.call('ZREM', K.handed, timer) < 0 then",
        (G, *FAST),
        "a timer delivered again after its claim (handed twice) would start the next attempt early",
    ),
    Break(
        "begin_step.done_check",
        "begin_step.lua",
        "local done = FINISHED[status]",
        "local done = FINISHED[status] and status ~= STATUS.completed",
        (G, *FAST),
        "a completed step redelivered while its run is still active would run twice",
    ),
    Break(
        "begin_step.live_lease",
        "begin_step.lua",
        "  if lease > now then",
        "  if lease < now then",
        (LEDGER, *FAST),
        "a copy delivered while another worker runs the step would run it concurrently",
    ),
    Break(
        "begin_step.resumed_attempt",
        "begin_step.lua",
        "    attempt = attempts -- a resumed step goes on with the same attempt",
        "    attempt = attempts + 1",
        (G, *FAST),
        "a step resumed after an await would count as a new attempt (and use up retries)",
    ),
    Break(
        "finish_step.duplicate",
        "finish_step.lua",
        "if FINISHED[status] then",
        "if FINISHED[status] and status ~= STATUS.completed then",
        (G, *FAST),
        "a duplicate finish would append a second step.completed",
    ),
    Break(
        "finish_step.retrying_is_active",
        "finish_step.lua",
        "      if not string.find(fields[j], '|', 1, true) and ACTIVE[fields[j + 1]] then",
        "      if not string.find(fields[j], '|', 1, true) and ACTIVE[fields[j + 1]]"
        " and fields[j + 1] ~= STATUS.retrying then",
        (G, *FAST),
        "a run would complete while one of its steps still waits for a retry",
    ),
    Break(
        "emit.claim_once",
        "emit.lua",
        "      local claimed = redis.call('HSETNX', K.steps, step, STATUS.queued) == 1",
        "      local claimed = redis.call('HSET', K.steps, step, STATUS.queued) >= 0",
        (LEDGER, *FAST),
        "every emit of a subscribed name would enqueue the subscriber again",
    ),
    Break(
        "emit.join_ready",
        "emit.lua",
        "      if not payloads[j] then",
        "      if payloads[j] == nil then",  # HMGET gives false, never nil, for a gap
        (LEDGER, *FAST),
        "a join would run after its first event instead of after all of them",
    ),
    Break(
        "start_run.exists",
        "start_run.lua",
        "if redis.call('EXISTS', K.stream) == 1 then",
        "if redis.call('EXISTS', K.stream) == 2 then",
        (LEDGER, *FAST),
        "starting a run id twice would append a second flow.started",
    ),
    Break(
        "renew_lease.only_running",
        "renew_lease.lua",
        "if redis.call('HGET', K.steps, A.step) ~= STATUS.running then",
        "if redis.call('HGET', K.steps, A.step) == 'never' then",
        (LEDGER, *FAST),
        "a finished step's lease would be renewed (and revive a stale holder)",
    ),
    Break(
        "take_due.handed",
        "take_due.lua",
        "  redis.call('ZADD', K.handed, math.max(at, now) + grace, timer)",
        "  -- (not kept in the handed set)",
        (G, *FAST),
        "a timer whose message dies with its worker would never be handed over again",
    ),
    Break(
        "run_lib.run_ended",
        "run_lib.lua",
        "  redis.call('HSET', K.meta, 'flow', A.flow, 'status', status, 'ended_ms', ms)",
        "  redis.call('HSET', K.meta, 'flow', A.flow, 'status', status)",
        (LEDGER, *FAST),
        "steps would still start, and a second terminal event land, after the run ended",
    ),
    Break(
        "run_lib.publish_batch",
        "run_lib.lua",
        "    redis.call('PUBLISH', A.run_live, table.concat(live, '\\n'))",
        "    redis.call('PUBLISH', A.run_live, table.concat(live, '\\n', 2))",
        ("tests/test_live_merge.py", *FAST),
        "live subscribers would miss the first event of every append",
    ),
    Break(
        "signal_lib.match",
        "signal_lib.lua",
        "    if payload[k] ~= v then",
        "    if payload[k] == nil then",
        ("tests/test_await_races.py", "tests/test_e2e_awaits.py"),
        "an event wait would be woken by an emission whose payload does not match",
    ),
    Break(
        "cancel.running_steps",
        "cancel.lua",
        "    if ACTIVE[value] then",
        "    if ACTIVE[value] and value ~= STATUS.running then",
        (G, *FAST),
        "a step running when its run is cancelled would append step.completed after flow.cancelled",
    ),
    Break(
        "list_runs.cursor",
        "list_runs.lua",
        "  max = '(' .. string.rep('0', 13 - #ms) .. ms .. ':' .. A.before",
        "  max = '[' .. string.rep('0', 13 - #ms) .. ms .. ':' .. A.before",
        ("tests/test_store_conformance.py", *FAST),
        "the next page of runs would repeat the cursor's run",
    ),
    Break(
        "claim_ticks.mark",
        "claim_ticks.lua",
        "  elseif mark and tonumber(tick) <= tonumber(mark) then",
        "  elseif mark and tonumber(tick) < tonumber(mark) then",
        ("tests/test_schedules.py",),
        "two pumps offering the same tick would both win it: a schedule fires twice",
    ),
    Break(
        "claim_ticks.paused",
        "claim_ticks.lua",
        "  if redis.call('HEXISTS', K.paused, name) == 1 then",
        "  if false then",
        ("tests/test_schedules.py",),
        "a paused schedule would go on firing",
    ),
    Break(
        "claim_ticks.owed",
        "claim_ticks.lua",
        "    redis.call('ZADD', K.starting, redo_at, tick .. ' ' .. A.items[i + 2] .. ' ' .. name)",
        "",
        ("tests/test_schedules.py",),
        "a worker dying between winning a tick and starting its run would lose the firing",
    ),
    Break(
        "pause_schedule.resume_mark",
        "pause_schedule.lua",
        "  if not mark or tonumber(A.at_ms) > tonumber(mark) then",
        "  if false then",
        ("tests/test_schedules.py",),
        "a resumed schedule would fire the ticks of its pause late",
    ),
    Break(
        "retry_run.only_failed",
        "retry_run.lua",
        "if status ~= failed then",
        "if status == nil then",
        ("tests/test_rerun_retry.py",),
        "a run that did not fail (completed, cancelled) could be retried",
    ),
    Break(
        "declare_triggers.unchanged",
        "declare_triggers.lua",
        "  if not old or string.sub(old, 1, #decl + 1) ~= decl .. '\\n' then",
        "  if true then",
        ("tests/test_trigger_declarations.py",),
        "every worker start would record its triggers again, changed or not",
    ),
)


# -- restoring ------------------------------------------------------------------------------

_pending: dict[Path, bytes] = {}  # files broken right now -> their original bytes


def _restore_all() -> None:
    for path, original in list(_pending.items()):
        path.write_bytes(original)
        del _pending[path]


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through the finally blocks


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def broken(path: Path, line: str, replacement: str) -> Iterator[None]:
    """``path`` with ``line`` replaced for the duration; restored and verified after."""
    original = path.read_bytes()
    digest = _sha256(original)
    lines = original.decode().split("\n")
    lines[lines.index(line)] = replacement
    _pending[path] = original
    try:
        path.write_bytes("\n".join(lines).encode())
        yield
    finally:
        blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)  # no interruption mid-restore
        try:
            path.write_bytes(original)
            _pending.pop(path, None)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
        if _sha256(path.read_bytes()) != digest:
            raise SystemExit(f"RESTORE FAILED: {path} differs from its original; fix it by hand")


# -- running --------------------------------------------------------------------------------


def check_table(tree: Path, breaks: Sequence[Break]) -> list[str]:
    """Entries whose line is not exactly once in its file (the code moved on)."""
    problems = []
    for entry in breaks:
        path = tree / LUA / entry.file
        if not path.is_file():
            problems.append(f"{entry.name}: no file {path}")
            continue
        count = path.read_text().split("\n").count(entry.line)
        if count != 1:
            problems.append(f"{entry.name}: the line occurs {count} times in {entry.file}")
    return problems


def run_tests(tree: Path, args: Sequence[str], timeout: float) -> tuple[str, float]:
    """Run pytest on ``args`` in ``tree``: (outcome, seconds). The outcome is ``failed``
    (exit 1), ``passed``, ``timeout`` or ``error N`` (collection or usage problems)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *args]
    began = time.monotonic()
    child = subprocess.Popen(
        command,
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: workers it starts go with it
    )
    try:
        code = child.wait(timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - began
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    outcome = {0: "passed", 1: "failed"}.get(code, f"error {code}")
    return outcome, time.monotonic() - began


def scratch_copy() -> Path:
    tree = Path(tempfile.mkdtemp(prefix="flowqueue-breaks-"))
    atexit.register(shutil.rmtree, tree, True)
    skip = shutil.ignore_patterns(
        ".git", ".venv", "mutants", "__pycache__", ".*_cache", ".hypothesis", "*.egg-info"
    )
    for name in ("flowqueue", "tests", "workers"):
        shutil.copytree(ROOT / name, tree / name, ignore=skip)
    for name in ("pyproject.toml", "celeryconfig.py"):
        shutil.copy2(ROOT / name, tree / name)
    return tree


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--in-place", action="store_true", help="break the working tree")
    parser.add_argument("--only", action="append", default=[], help="run only these breaks")
    parser.add_argument("--list", action="store_true", help="print the table and stop")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per break")
    parser.add_argument("--no-baseline", action="store_true", help="skip the clean run")
    options = parser.parse_args(argv)

    breaks = [b for b in BREAKS if not options.only or b.name in options.only]
    if unknown := set(options.only) - {b.name for b in BREAKS}:
        parser.error(f"no such break: {', '.join(sorted(unknown))} (see --list)")
    if options.list:
        for entry in breaks:
            print(f"{entry.name}  ({entry.file})\n  - {entry.line.strip()}")
            print(f"  + {entry.broken.strip()}\n  tests: {' '.join(entry.tests)}")
            print(f"  why: {entry.why}")
        return 0

    tree = ROOT if options.in_place else scratch_copy()
    if problems := check_table(tree, breaks):
        print("the break table is out of date:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    atexit.register(_restore_all)

    if not options.no_baseline:
        selections = {entry.tests for entry in breaks}
        print(f"baseline: {len(selections)} selections on the unbroken scripts ...", flush=True)
        for selection in sorted(selections):
            outcome, _ = run_tests(tree, selection, options.timeout)
            if outcome != "passed":
                print(f"baseline {outcome}: {' '.join(selection)}; fix that first", file=sys.stderr)
                return 2

    rows = []
    try:
        for entry in breaks:
            with broken(tree / LUA / entry.file, entry.line, entry.broken):
                outcome, seconds = run_tests(tree, entry.tests, options.timeout)
            caught = outcome in ("failed", "timeout")
            rows.append((entry, outcome, caught, seconds))
            mark = "caught" if caught else f"MISSED ({outcome})"
            print(f"{entry.name:<30} {mark:<18} {seconds:6.1f} s", flush=True)
    except KeyboardInterrupt:
        print("interrupted: every script restored", file=sys.stderr)
        return 130

    caught_count = sum(caught for _, _, caught, _ in rows)
    print(f"\n{'break':<30} {'file':<24} {'result':<10} tests")
    for entry, outcome, caught, _ in rows:
        result = ("caught" if caught else "MISSED") + ("*" if outcome == "timeout" else "")
        print(f"{entry.name:<30} {entry.file:<24} {result:<10} {' '.join(entry.tests)}")
    print(f"\nLua breaks caught: {caught_count}/{len(rows)}  (* = by a timeout)")
    return 0 if caught_count == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
