"""The Lua scripts: one declaration each, naming its keys and arguments, and the call.

A script's source is a preamble generated here (the tables Lua shares with Python, from
``flowqueue/model/statuses.py``, and ``K`` / ``A``: the call's keys and arguments by name),
then its libraries and body (``lua/``); made once per script, so its SHA stays the same.
Calls go straight to ``EVALSHA`` (redis-py's ``Script`` wrapper costs ~10 µs a call on the
append hot path); a server without the script yet (new or restarted) gets it by ``EVAL``.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib.resources import files as files_of
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from flowqueue.model import statuses
from flowqueue.model.events import RUN_STATUS_BY_KIND


def _table(pairs: Any) -> str:
    return "{" + ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in pairs) + "}"


# The tables Lua shares with Python, by the name the scripts use (a script gets those its
# text names); a SLOT is the Lua pattern of the JSON string Python wrote.
SHARED = {
    "STATUS": _table((status, status) for status in statuses.STEP_STATUSES),
    "ACTIVE": _table((status, True) for status in statuses.ACTIVE_STATUSES),
    "FINISHED": _table((status, True) for status in statuses.FINISHED_STATUSES),
    "CODE": _table(sorted(statuses.APPEND_CODES.items())),
    "RUN_STATUS": _table(sorted(RUN_STATUS_BY_KIND.items())),
    "DURATION_BUCKETS": _table(enumerate(statuses.DURATION_BUCKETS_MS, 1)),
    "SLOT": _table((k, re.sub(r"(\W)", r"%\1", json.dumps(v))) for k, v in statuses.SLOTS.items()),
}
# Every script's helpers: rest(t, i), a list's values from i on (a loop: unpack() stops at
# a few thousand values); now_ms(), the server's time, read once per call: a call happens
# at one instant (scripts are replicated by effects, so TIME is allowed before writes).
_HELPERS = """\
local function rest(t, i) local r = {} for j = i, #t do r[#r + 1] = t[j] end return r end
local now_read = nil
local function now_ms()
  if now_read == nil then
    local t = redis.call('TIME')
    now_read = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return now_read
end"""
# run_lib.lua's keys and arguments, which every per-run script takes first (ScriptNames.run,
# fills them): the run's own keys, where it is listed and counted, and how long each end keeps it.
RUN_KEYS: tuple[str, ...] = ("stream", "meta", "steps", "emits", "awaits", "copy")
RUN_KEYS += ("runs", "feed", "stats", "expiry", "expiring", "archiving")
RUN_ARGS: tuple[str, ...] = ("run_live", "feed_live", "feed_maxlen", "run_id", "flow")
RUN_ARGS += ("completed_retention_ms", "failed_retention_ms", "cancelled_retention_ms")
RUN_ARGS += ("archive",)
# expiry_lib.lua's: a flow's index, counters, expiry set, and the feed; how old the feed's
# entries may grow (Settings.shortest_retention_seconds).
EXPIRY_KEYS = ("runs", "expiry", "stats", "feed", "expiring")
EXPIRY_ARGS = ("shortest_retention_ms",)


class Script:
    """A script: its files (libraries, then the body, of ``lua/``) and the names of its keys
    and arguments. run_lib.lua brings its own names, first.

    A key ending in ``?`` is optional: None leaves it out (Lua sees nil; ARGV[1] says which
    were sent). A name starting with ``*`` takes a list, sent last (Lua sees a table).
    ``run`` takes every declared name as a keyword and ignores others, so one set of a
    run's names serves every per-run script. A script may name a key its library brings
    again (to say its body uses it); it is sent once.
    """

    def __init__(self, files: str, keys: tuple[str, ...] = (), args: tuple[str, ...] = ()) -> None:
        if files.startswith("run_lib.lua "):
            keys, args = RUN_KEYS + tuple(k for k in keys if k not in RUN_KEYS), RUN_ARGS + args
        elif files.startswith("expiry_lib.lua "):
            keys = EXPIRY_KEYS + tuple(k for k in keys if k not in EXPIRY_KEYS)
            args = EXPIRY_ARGS + args
        self.filename = files.split()[-1]
        self.keys = [k for k in keys if k[-1] != "?" and k[0] != "*"]
        self.optional = [k[:-1] for k in keys if k[-1] == "?"]
        self.args = [a for a in args if a[0] != "*"]
        self.rest_key = next((k[1:] for k in keys if k[0] == "*"), "")
        self.rest_arg = next((a[1:] for a in args if a[0] == "*"), "")
        self.names = {*self.keys, *self.optional, *self.args, self.rest_key, self.rest_arg} - {""}
        if len(self.names) != len(keys) + len(args):
            raise ValueError(f"{files}: a name repeats")
        folder = files_of("flowqueue.backend.redis").joinpath("lua")
        self.body = "\n".join(folder.joinpath(name).read_text() for name in files.split())
        self.source = self._preamble() + self.body
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    def _preamble(self) -> str:
        """The shared tables the body names, then K and A by name."""
        lua = [f"local {n} = {t}" for n, t in SHARED.items() if re.search(rf"\b{n}\b", self.body)]
        skip = 1 if self.optional else 0  # ARGV[1]: which optional keys were sent
        keys = ", ".join(f"{k} = KEYS[{i}]" for i, k in enumerate(self.keys, 1))
        args = ", ".join(f"{a} = ARGV[{i}]" for i, a in enumerate(self.args, 1 + skip))
        lua += [_HELPERS, f"local K, A = {{{keys}}}, {{{args}}}", f"local sent = {len(self.keys)}"]
        sent = "if ARGV[1]:sub({0}, {0}) == '1' then sent = sent + 1; K.{1} = KEYS[sent] end"
        lua += [sent.format(i, key) for i, key in enumerate(self.optional, 1)]
        if self.rest_key:
            lua.append(f"K.{self.rest_key} = rest(KEYS, sent + 1)")
        if self.rest_arg:
            lua.append(f"A.{self.rest_arg} = rest(ARGV, {len(self.args) + skip + 1})")
        return "\n".join(lua) + "\n"

    def call(self, named: dict[str, Any]) -> tuple[list[Any], list[Any]]:
        """KEYS and ARGV from the declared names (KeyError for one not given)."""
        keys, argv = [named[k] for k in self.keys], [named[a] for a in self.args]
        if self.optional:
            sent = [named[k] for k in self.optional]
            keys += [k for k in sent if k is not None]
            argv.insert(0, "".join("0" if k is None else "1" for k in sent))
        keys += named[self.rest_key] if self.rest_key else []
        argv += named[self.rest_arg] if self.rest_arg else []
        return keys, argv

    def run(self, client: redis.Redis, /, **named: Any) -> Any:
        keys, argv = self.call(named)
        try:
            return client.evalsha(self.sha, len(keys), *keys, *argv)
        except NoScriptError:
            return client.eval(self.source, len(keys), *keys, *argv)

    async def run_async(self, client: aioredis.Redis, /, **named: Any) -> Any:
        keys, argv = self.call(named)
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *argv)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *argv)


APPEND = Script("run_lib.lua append.lua", args=("needs_run", "kinds", "*bodies"))
LIST_RUNS = Script(
    "expiry_lib.lua list_runs.lua",
    args=("flow", "batch", "limit", "before", "before_ms", "meta_template"),
)
SWEEP = Script("expiry_lib.lua sweep.lua", args=("flow", "batch", "dry", "offset"))
FLOW_STATS = Script("expiry_lib.lua flow_stats.lua", args=("flow", "batch"))
START_RUN = Script(
    "run_lib.lua send_lib.lua start_run.lua", keys=("steps",), args=("started", "sends", "*entry")
)
SEND = Script("send_lib.lua send.lua", args=("sends",))
# A claim's names (claim_lib.lua), and a finish's (finish_lib.lua).
CLAIM_KEYS = ("steps", "awaits", "timers", "handed", "payloads", "waiters?", "trigger?")
CLAIM_ARGS = ("step", "lease_ms", "started", "timer", "on_claim", "claim_kind", "retention_ms")
FINISH_ARGS = ("outcome", "event", "kind", "terminal", "due_ms", "arg", "expect")
BEGIN_STEP = Script(
    "run_lib.lua trigger_lib.lua claim_lib.lua begin_step.lua",
    keys=CLAIM_KEYS,
    args=(*CLAIM_ARGS, "start", "entries", "made_ms", "shortest_retention_ms"),  # + StartNote
)
RENEW_LEASE = Script("renew_lease.lua", keys=("steps",), args=("step", "lease_ms"))
EMIT = Script(
    "run_lib.lua signal_lib.lua send_lib.lua trigger_lib.lua claim_lib.lua emit.lua",
    keys=("steps", "emits", "handed", "payloads", "signals", "waiters", "timers", "trigger?"),
    args=(
        *("name", "event", "payload", "republish", "candidates", "sends"),
        *("maxlen", "ttl_ms", "grace_ms"),
        *("step", "lease_ms", "started", "on_claim", "claim_kind", "retention_ms"),  # a claim
    ),
)
FINISH_STEP = Script(
    "run_lib.lua finish_lib.lua finish_step.lua",
    keys=("steps", "timers"),
    args=("step", "timer", *FINISH_ARGS),
)
CLAIM_FINISH = Script(
    "run_lib.lua trigger_lib.lua claim_lib.lua finish_lib.lua claim_finish.lua",
    keys=CLAIM_KEYS,
    args=(*CLAIM_ARGS, *FINISH_ARGS),
)
TAKE_DUE = Script(
    "take_due.lua", keys=("timers", "handed"), args=("horizon_ms", "limit", "grace_ms")
)
SUSPEND = Script(
    "run_lib.lua signal_lib.lua suspend.lua",
    keys=("steps", "timers", "awaits", "waiters?", "trigger?", "signals?"),
    args=(
        "step",
        "key",
        "record",
        "event",
        "kind",
        "due_ms",
        "arg",
        "waiter",
        "match",
        "resumed",
        "trigger_json",
    ),
)
ONCE = Script("run_lib.lua once.lua", keys=("awaits",), args=("key", "record", "event"))
RESUME = Script(
    "run_lib.lua trigger_lib.lua resume.lua",
    keys=("steps", "timers", "handed", "awaits", "trigger"),
    args=("step", "key", "payload", "resumed", "timer", "grace_ms", "retention_ms"),
)
SIGNAL = Script(
    "signal_lib.lua signal.lua",
    keys=("signals", "waiters", "handed", "payloads"),
    args=("payload", "maxlen", "ttl_ms", "grace_ms"),
)
# Signals and starts that start runs, once per idempotency key (backend/redis/starts.py).
SIGNAL_START = Script(
    "signal_lib.lua idempotency_lib.lua signal_start.lua",
    keys=("signals", "waiters", "handed", "payloads", "idempotency?"),
    args=("payload", "maxlen", "ttl_ms", "grace_ms", "runs", "idempotency_ms"),
)
CLAIM_START = Script(
    "idempotency_lib.lua claim_start.lua", keys=("idempotency",), args=("runs", "idempotency_ms")
)
IDEMPOTENCY_DONE = Script("idempotency_done.lua", keys=("idempotency",))
CANCEL = Script(
    "run_lib.lua trigger_lib.lua cancel.lua",
    keys=("steps", "awaits", "timers", "handed", "payloads", "*pending"),
    args=("cancelled", "retention_ms"),
)
# Re-run and retry-from-failure (coordinator.py): the old run's note, a failed run again.
ARCHIVED = Script("run_lib.lua archived.lua", args=("last_id",))
RERUN_NOTE = Script("run_lib.lua rerun_note.lua", args=("event",))
RETRY_RUN = Script(
    "run_lib.lua retry_run.lua",
    keys=("steps", "emits", "awaits"),
    args=("retried", "*first_emits"),
)
# Schedules: each (schedule, tick) fired once across every pump, its trigger.fired in the
# same script (backend/redis/schedules.py); other start triggers' firings (triggers.py).
CLAIM_TICKS = Script(
    "registry_lib.lua claim_ticks.lua",
    keys=("fired", "paused", "starting", "registry", "last"),
    args=("now_ms", "redo_ms", "maxlen", "*items"),
)
RETAKE_STARTS = Script(
    "retake_starts.lua", keys=("starting",), args=("now_ms", "redo_ms", "*members")
)
PAUSE_SCHEDULE = Script(
    "pause_schedule.lua",
    keys=("fired", "paused", "registry"),
    args=("name", "pause", "at_ms", "event", "maxlen"),
)
DECLARE_TRIGGERS = Script(
    "declare_triggers.lua",
    keys=("registry", "declared"),
    args=("maxlen", "ts", "worker", "flows", "*items"),
)
TRIGGER_FIRED = Script(
    "registry_lib.lua trigger_fired.lua",
    keys=("registry", "last"),
    args=("field", "event", "maxlen"),
)
