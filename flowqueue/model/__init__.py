"""The pure model: what a run is made of, with no I/O.

Owns the event record and its kinds (``events``), ids and cursors (``ids``), the one
set of input limits (``validation``), the reducer that folds a log into a run's state
(``reducer``), awaits and timers as data (``awaits``, ``timers``), the step message
header (``header``), step statuses shared with the Lua scripts (``statuses``) and the
one-line text of an event (``lines``).

May import: ``flowqueue.errors`` and third-party libraries only (pydantic). Nothing here
talks to Redis, Celery or the network, so every rule here is tested in process.
"""
