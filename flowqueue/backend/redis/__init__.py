"""The Redis backend: every key name (``keys``), the Lua scripts (``lua/``) with their
typed callers (``scripts``), the event store (``store``), the run coordinator
(``coordinator``), the Pub/Sub live hub (``_hub``) and a throwaway ``redis-server``
(``embedded``) for ``memory://``, the demo and the tests.

Every state transition is one Lua script: the scripts are the only implementation of a
rule; Python builds their calls and decodes their replies.
"""
