"""Settings, read from ``FLOWQUEUE_*`` environment variables (pydantic-settings)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from flowqueue.errors import ConfigurationError

MIB = 1024 * 1024
MEMORY_URL = "memory://"  # a redis-server of the app's own (runtime/_connections.py)


_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` without its password (``redis://user:***@host``, ``?password=***``), for
    messages; whether or not the rest of it parses."""
    scheme, sep, rest = url.partition("://")
    if sep:
        # To the last "@" before the query: a password may hold "/" or "@" unescaped.
        end = min((i for i in map(rest.find, "?#") if i >= 0), default=len(rest))
        userinfo, at, host = rest[:end].rpartition("@")
        if at and ":" in userinfo:
            rest = f"{userinfo.split(':', 1)[0]}:***@{host}{rest[end:]}"
        url = f"{scheme}{sep}{rest}"
    return _QUERY_PASSWORD.sub(r"\1***", url)


def redis_url_problem(url: str) -> str | None:
    """Why ``url`` is not a Redis URL that redis-py and kombu both accept, or None.
    (redis-py would only say so at the first connection, deep inside a command.)"""
    if url == MEMORY_URL:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number or too big
    except ValueError as exc:
        return str(exc)
    if not parts.scheme:
        return "it has no scheme"
    if parts.scheme not in ("redis", "rediss", "unix"):
        return f"the scheme is {parts.scheme!r}, not redis, rediss or unix"
    if parts.scheme == "unix":
        return None if parts.path else "it names no socket path"
    database = parts.path.strip("/")
    if database and not re.fullmatch(r"[0-9]+", database):
        return f"the database {database!r} is not a number"
    return None


class Settings(BaseSettings):
    """flowqueue configuration. Every field can be set as ``FLOWQUEUE_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="FLOWQUEUE_",
        extra="ignore",
        frozen=True,
        env_ignore_empty=True,
        use_attribute_docstrings=True,  # each field's docstring is its description
    )

    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis holding the event logs (and, by default, the Celery broker)."""
    key_prefix: str = Field(default="fq", pattern=r"^[A-Za-z0-9_.\-]{1,32}$")
    """Prefix of every Redis key and channel flowqueue uses."""
    max_payload_bytes: int = Field(default=MIB, gt=0)
    """Largest encoded event accepted by the store."""
    feed_maxlen: int = Field(default=10_000, gt=0)
    """Approximate length cap of the cross-run lifecycle feed stream (its entries are also dropped
    once older than the shortest run retention, so none outlives its run)."""
    subscriber_buffer: int = Field(default=10_000, gt=0)
    """Live events buffered per subscriber before it falls back to re-reading the log (memory stays
    bounded; nothing is lost)."""
    reconnect_timeout: float = Field(default=60.0, gt=0)
    """How long a live subscription keeps retrying while Redis is unreachable before it gives up
    with the connection error."""
    redis_max_connections: int = Field(default=64, gt=1)
    """Connections of one async store (an API process); more concurrent reads wait for one."""
    read_page_size: int = Field(default=1_000, gt=0)
    """Events fetched per round trip when paging a log."""
    workers: str = "workers"
    """Comma-separated packages or modules holding flow steps; a package's modules are all imported.
    The default package may be absent; a named one may not."""
    visibility_timeout: float | None = Field(default=None, gt=0)
    """Overrides the Redis broker's visibility_timeout (seconds): how long an unacknowledged step
    message waits before another worker gets it again."""
    retry_attempts: int = Field(default=1, ge=1)
    """Default retry policy: runs of a step, the first included (1 = none); a step's own
    retry=Retry(...) wins."""
    retry_delay: float = Field(default=1.0, ge=0)
    """Default first retry delay (s)."""
    retry_max_delay: float = Field(default=30.0, ge=0)
    """Default longest delay (s)."""
    timer_poll_seconds: float = Field(default=0.1, gt=0)
    """How often each worker's timer pump looks for due timers."""
    timer_horizon_seconds: float = Field(default=5.0, gt=0)
    """Timers due within this many seconds are handed to Celery as countdown messages (kept far
    below the broker's visibility timeout)."""
    timer_rehand_seconds: float = Field(default=60.0, gt=0)
    """A timer handed to Celery but not claimed this long after it fell due is handed over again
    (its countdown message died with a worker)."""
    new_run_priority: int | None = Field(default=None, ge=0, le=255)
    """Celery priority of a new run's entry steps (default on a Redis broker: 3, below
    in_flight_priority; elsewhere none)."""
    in_flight_priority: int | None = Field(default=None, ge=0, le=255)
    """Celery priority of every later step delivery of a run: next steps, sleeps that fell due,
    retries, resumes (default on a Redis broker: 0, served first; on RabbitMQ with
    task_queue_max_priority: its top, 9; elsewhere none)."""
    step_lease_seconds: float = Field(default=30.0, gt=0)
    """A running step's claim lasts this long and is renewed while it runs; a redelivered step whose
    claim is still live waits instead of running twice."""
    tracing: bool = False
    """OpenTelemetry spans: a run is a trace, each step delivery a span, awaits span events
    (needs the ``otel`` extra; spans go to the TracerProvider the process sets up)."""
    claim_defer_seconds: float = Field(default=0.1, ge=0)
    """A step's first delivery (its message queued once by the call that sent it) runs its body
    at once and claims the step at its first write, its end, or this long into its body: a step
    that ends sooner records step.started with its end in one call. 0: every delivery claims
    before it runs."""
    signal_maxlen: int = Field(default=1_000, gt=0)
    """Recent emissions kept per event name, for waits registered right after an emission
    (approximate cap)."""
    signal_retention_seconds: float = Field(default=3_600.0, gt=0)
    """An event name's recent emissions are dropped when none was emitted for this long."""
    trigger_retention_seconds: float = Field(default=7 * 24 * 3_600.0, gt=0)
    """A used or expired trigger is remembered this long, so a second resume says 'already resumed'
    rather than 'unknown'."""
    idempotency_seconds: float = Field(default=24 * 3_600.0, gt=0)
    """A signal or start sent again with the same idempotency_key within this many seconds returns
    the first one's run ids and starts nothing."""
    # -- retention of ended runs (0 keeps them forever; a run not ended never expires) ----
    completed_retention_seconds: float = Field(default=7 * 24 * 3_600.0, ge=0)
    """A completed run (its log and bookkeeping) is deleted this long after it ended; 0 keeps it."""
    failed_retention_seconds: float = Field(default=30 * 24 * 3_600.0, ge=0)
    """A failed run is deleted this long after it ended; 0 keeps it."""
    cancelled_retention_seconds: float = Field(default=7 * 24 * 3_600.0, ge=0)
    """A cancelled run is deleted this long after it ended; 0 keeps it."""
    retention_sweep_seconds: float = Field(default=60.0, gt=0)
    """How often each worker drops expired runs from the flow index, the lifecycle feed and the
    counters (listing a flow's runs or reading its counters drops them first as well)."""

    # -- the Postgres archive (extra postgres) -----------------------------------------
    archive_url: str | None = None
    """PostgreSQL URL (postgresql://user:pass@host/db) of the archive: an ended run's log is
    copied there by a worker before its retention starts, and reads of a run gone from Redis
    fall back to it. Unset: no archive."""
    archive_batch: int = Field(default=200, gt=0, le=10_000)
    """Ended runs the archiver copies per transaction."""
    archive_poll_seconds: float = Field(default=1.0, gt=0)
    """How often the archiver looks for ended runs when it last found none."""

    # -- worker registry ---------------------------------------------------------------
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    """How often a worker appends worker.heartbeat."""
    worker_lost_after_seconds: float = Field(default=20.0, gt=0)
    """A worker with no heartbeat for this long is shown as lost."""
    registry_retention_seconds: float = Field(default=24 * 3_600.0, gt=0)
    """Registry events older than this are trimmed from the registry stream."""
    # -- HTTP API and live streams ------------------------------------------------------
    api_token: SecretStr | None = None
    """When set, every API route but /healthz and trigger resume requires 'Authorization: Bearer
    <token>' (or the dashboard's login cookie, for SSE)."""
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    """Idle SSE streams send a comment line this often."""
    sse_client_buffer: int = Field(default=1_000, gt=0)
    """Events queued for one SSE client (and buffered live for it); a client further behind re-reads
    the log as it catches up: nothing lost, memory bounded."""
    sse_send_timeout_seconds: float = Field(default=10.0, gt=0)
    """An SSE client that accepts no data for this long is disconnected."""
    flower_url: str | None = None
    """Flower's address as a browser reaches it (e.g. http://localhost:5555): the dashboard
    links each step to its task there. Unset: no links."""
    # -- HTTP server timeouts: stalled clients must not hold connections forever ---------
    api_header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A request's line and headers must arrive within this many seconds of the connection opening
    or of the previous response; else 408 and the connection is closed."""
    api_body_timeout_seconds: float = Field(default=30.0, gt=0)
    """A JSON request body must arrive within this many seconds of the route starting to read it;
    else 408 and the connection is closed."""
    api_keep_alive_seconds: int = Field(default=5, gt=0)
    """An idle keep-alive connection is closed after this many seconds (uvicorn's
    timeout_keep_alive)."""

    # -- API auth: login sessions, login rate limit, CORS ------------------------------
    api_allow_short_token: bool = False
    """Lets the API start with a FLOWQUEUE_API_TOKEN shorter than 32 characters (refused otherwise:
    a short token can be guessed)."""
    session_secret: SecretStr | None = None
    """Keys the login cookie's signature together with the token (same value on every API process).
    Unset: the key is derived from the token alone. Rotating either logs every browser out."""
    session_ttl_seconds: int = Field(default=12 * 3_600, ge=1)
    """A login cookie is valid this long (seconds)."""
    api_login_rate_limit: str = "10/minute"
    """Login attempts allowed per client IP, shared by every API process through Redis, e.g.
    '10/minute' or '100/hour'; every attempt counts, right or wrong."""
    api_cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Origins (scheme://host[:port]) allowed to call the API from a browser, comma-separated or a
    JSON list; empty: no CORS headers at all."""

    @field_validator("api_cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):  # from the environment: a JSON list or comma-separated
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @property
    def shortest_retention_seconds(self) -> float:
        """The shortest retention of an ended run (0: every run is kept forever); the
        lifecycle feed keeps nothing older."""
        kept = (
            self.completed_retention_seconds,
            self.failed_retention_seconds,
            self.cancelled_retention_seconds,
        )
        return min((s for s in kept if s > 0), default=0.0)

    @field_validator("archive_url")
    @classmethod
    def _check_archive_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("postgresql", "postgres"):
            raise ConfigurationError(
                f"FLOWQUEUE_ARCHIVE_URL {redact_url(value)!r} is not a PostgreSQL URL: use "
                "postgresql://user:password@host:5432/database, or unset it for no archive."
            )
        return value

    # -- Redis URL: checked when settings are read, not at the first connection ---------
    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        problem = redis_url_problem(value)
        if problem is not None:  # ConfigurationError passes through pydantic unwrapped
            raise ConfigurationError(
                f"FLOWQUEUE_REDIS_URL {redact_url(value)!r} is not a Redis URL ({problem}): use "
                "redis://host:port/db (or rediss://, unix:///path.sock, memory://)."
            )
        return value
