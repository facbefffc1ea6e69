"""The store's Lua scripts and how they are called.

Calls go straight to ``EVALSHA`` (redis-py's ``Script`` wrapper costs ~10 µs a call on the
append hot path); a server that does not know the script yet (new or restarted Redis) gets
it through ``EVAL``, which also caches it for the next call.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError


@dataclass(frozen=True)
class LuaScript:
    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())

    @classmethod
    def per_run(cls, filename: str, *libs: str) -> LuaScript:
        """A per-run script: ``run_lib.lua`` (append, flush, ...), then ``libs``, then its
        body."""
        return cls.load(filename, "run_lib.lua", *libs)

    @classmethod
    def load(cls, filename: str, *libs: str) -> LuaScript:
        """A script of ``lua/``: its ``libs``, then its body."""
        folder = files("flowqueue.backend.redis").joinpath("lua")
        return cls("\n".join(folder.joinpath(n).read_text() for n in (*libs, filename)))

    def run(self, client: redis.Redis, keys: list[str], argv: list[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *argv)
        except NoScriptError:
            return client.eval(self.source, len(keys), *keys, *argv)

    async def run_async(self, client: aioredis.Redis, keys: list[str], argv: list[Any]) -> Any:
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *argv)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *argv)


APPEND = LuaScript.per_run("append.lua")
LIST_RUNS = LuaScript.load("list_runs.lua")
