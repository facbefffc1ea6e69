"""The ``flowqueue`` command (``main``) and how it reports errors (``_friendly``: one
line on stderr, never a traceback). May import everything below it, the API included
(``flowqueue api`` serves it)."""
