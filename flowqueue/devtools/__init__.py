"""Tools for development, never needed in production: the demo (``demo``, what
``make demo`` runs) and a real ``celery worker`` process for tests and benchmarks
(``worker``). May import everything below it."""
