"""The Postgres archive (extra ``postgres``): ended runs' logs kept past their retention
in Redis (``archive``), its schema as plain SQL files applied in order (``migrations/``,
``_migrations``).

May import what ``backend`` may, and ``backend``'s interfaces. psycopg is imported here
only: without the extra, nothing else needs it.
"""
