"""Every declared Lua script agrees with its declaration: the body reads only the keys and
arguments it declares (and every one of them), counts no KEYS/ARGV positions, names only
statuses, slots and event kinds the shared table knows, and loads on Redis."""

from __future__ import annotations

import re

import pytest

from flowqueue.backend.redis import scripts
from flowqueue.backend.redis.scripts import Script
from flowqueue.model.events import KNOWN_KINDS
from flowqueue.model.statuses import SLOTS, STEP_STATUSES

SCRIPTS = [value for value in vars(scripts).values() if isinstance(value, Script)]
LUA_WORDS = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "if"}
LUA_WORDS |= {"in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until"}
LUA_WORDS |= {"while"}


def used(prefix: str, text: str) -> set[str]:
    return set(re.findall(rf"\b{prefix}\.(\w+)", text))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.filename)
def test_the_body_uses_exactly_the_declared_names(script: Script):
    keys = {*script.keys, *script.optional, script.rest_key} - {""}
    args = {*script.args, script.rest_arg} - {""}
    assert used("K", script.body) == keys
    assert used("A", script.body) == args
    assert not re.search(r"\b(KEYS|ARGV)\b", script.body)  # positions live in the preamble
    for name in script.names:
        assert re.fullmatch(r"[a-z_][a-z0-9_]*", name), name
        assert name not in LUA_WORDS, name


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.filename)
def test_the_body_names_only_what_the_shared_table_defines(script: Script):
    assert used("STATUS", script.body) <= set(STEP_STATUSES)
    assert used("SLOT", script.body) <= set(SLOTS)
    assert set(re.findall(r"'((?:flow|step)\.[\w.]+)'", script.body)) <= KNOWN_KINDS


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda script: script.filename)
def test_each_script_loads_on_redis(script: Script, redis_client):
    assert redis_client.script_load(script.source) == script.sha


def test_optional_keys_left_out_are_not_sent_and_a_missing_name_is_an_error():
    named = {name: name for name in scripts.SUSPEND.names} | {"waiters": None, "signals": None}
    keys, argv = scripts.SUSPEND.call(named)
    assert keys[-1] == "trigger"
    assert "waiters" not in keys
    assert "signals" not in keys
    assert argv[0] == "010"  # which optional keys were sent: waiters, trigger, signals
    del named["step"]
    with pytest.raises(KeyError):
        scripts.SUSPEND.call(named)
