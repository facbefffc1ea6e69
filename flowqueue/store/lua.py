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
    def per_run(cls, package: str, filename: str, *libs: str) -> LuaScript:
        """A per-run script: ``run_lib.lua`` (append, flush, ...), then the ``libs`` of
        ``package``, then its body."""
        parts = [files("flowqueue.store").joinpath("run_lib.lua").read_text()]
        parts += [files(package).joinpath(name).read_text() for name in (*libs, filename)]
        return cls("\n".join(parts))

    @classmethod
    def load(cls, package: str, filename: str, *libs: str) -> LuaScript:
        """A script of ``package``: its ``libs``, then its body."""
        return cls("\n".join(files(package).joinpath(n).read_text() for n in (*libs, filename)))

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


APPEND = LuaScript.per_run("flowqueue.store", "append.lua")
LIST_RUNS = LuaScript.load("flowqueue.store", "list_runs.lua")
