"""The worker registry as events, in one Redis Stream (``Keys.registry``).

Each worker appends ``worker.registered`` when it is ready, ``worker.heartbeat`` every
``heartbeat_seconds`` and ``worker.deregistered`` on a warm shutdown. Who is online is
derived by a pure reducer (``workers_from``): a worker with no event for
``worker_lost_after_seconds`` is *lost* (killed, or cut off from Redis). Every append trims
entries older than ``registry_retention_seconds`` (``XADD MINID ~``), so the stream stays
bounded without a cleanup job; a running worker registers again every half retention so
its description is never trimmed away, and at the next beat after its registration is gone
(Redis restarted without its data, or was flushed).

| kind | data |
| --- | --- |
| ``worker.registered`` | pid, queues, flows (flow -> steps), concurrency, version, started_at |
| ``worker.heartbeat`` | pid, active / reserved requests (when known) |
| ``worker.deregistered`` | pid |
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from typing import Any, Literal

import redis
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.backoff import NoBackoff
from redis.retry import Retry

from flowqueue.backend.redis.keys import Keys
from flowqueue.model.ids import Timestamp, as_text, format_ts, ms_to_datetime
from flowqueue.model.timers import now_ms
from flowqueue.settings import MEMORY_URL, Settings

log = logging.getLogger(__name__)

EVENT_FIELD = "event"  # the one field of a stream entry: the WorkerEvent JSON
PAGE = 1_000  # entries per XRANGE round trip

WorkerEventKind = Literal["worker.registered", "worker.heartbeat", "worker.deregistered"]
WorkerStatus = Literal["online", "lost", "offline"]
Entry = tuple[Any, Any]  # (stream id, fields or None) as redis-py returns them
LiveNumbers = Callable[[], dict[str, Any]]


class WorkerEvent(BaseModel):
    """One registry record; its stream id is the event id."""

    model_config = ConfigDict(frozen=True)

    kind: WorkerEventKind
    hostname: str  # the Celery node name, e.g. ``w1@host``
    ts: Timestamp  # the worker's clock
    data: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def new(
        cls, kind: WorkerEventKind, hostname: str, data: dict[str, Any], at_ms: int | None = None
    ) -> WorkerEvent:
        return cls(kind=kind, hostname=hostname, ts=ms_to_datetime(at_ms or now_ms()), data=data)


class WorkerInfo(BaseModel):
    """A worker as the registry describes it."""

    hostname: str
    pid: int | None = None
    queues: list[str] = Field(default_factory=list)
    flows: dict[str, list[str]] = Field(default_factory=dict)
    concurrency: int | None = None
    version: str | None = None
    registered_at: Timestamp | None = None  # None: its registration was trimmed away
    last_seen: Timestamp
    status: WorkerStatus
    live: dict[str, Any] = Field(default_factory=dict)  # the last heartbeat's numbers


# -- the reducer -------------------------------------------------------------------------


def _apply(info: WorkerInfo | None, event: WorkerEvent) -> WorkerInfo:
    data = event.data
    pid = data.get("pid")
    if event.kind == "worker.registered":
        started = data.get("started_at")
        return WorkerInfo(
            hostname=event.hostname,
            pid=pid,
            queues=data.get("queues", []),
            flows=data.get("flows", {}),
            concurrency=data.get("concurrency"),
            version=data.get("version"),
            registered_at=started if started is not None else event.ts,
            last_seen=event.ts,
            status="online",
        )
    if info is None:  # its registration was trimmed away: show what the event tells
        info = WorkerInfo(hostname=event.hostname, pid=pid, last_seen=event.ts, status="online")
    elif pid is not None and info.pid is not None and pid != info.pid:
        return info  # a late event of an earlier process under the same node name
    update: dict[str, Any] = {"last_seen": event.ts}
    if event.kind == "worker.deregistered":
        update["status"] = "offline"
    elif info.status != "offline":  # a heartbeat racing the shutdown does not revive it
        update["live"] = {k: v for k, v in data.items() if k != "pid"}
    return info.model_copy(update=update)


def workers_from(
    events: Iterable[tuple[str, WorkerEvent]], now: datetime, lost_after: float
) -> list[WorkerInfo]:
    """Every worker the events mention, in stream order folded into its latest state,
    sorted by hostname. A worker that was online but silent for ``lost_after`` seconds is
    ``lost``; a deregistered one is ``offline`` until it registers again."""
    workers: dict[str, WorkerInfo] = {}
    for _, event in events:
        workers[event.hostname] = _apply(workers.get(event.hostname), event)
    cutoff = now - timedelta(seconds=lost_after)
    return [
        info.model_copy(update={"status": "lost"})
        if info.status == "online" and info.last_seen < cutoff
        else info
        for _, info in sorted(workers.items())
    ]


# -- reading -----------------------------------------------------------------------------


def decode_entries(entries: Iterable[Entry]) -> list[tuple[str, WorkerEvent]]:
    """Stream entries -> (id, event); entries that are not registry events are skipped
    (one bad writer must not hide every worker)."""
    decoded: list[tuple[str, WorkerEvent]] = []
    for entry_id, fields in entries:
        fields = fields or {}
        raw = fields.get(EVENT_FIELD.encode(), fields.get(EVENT_FIELD))
        try:
            decoded.append((as_text(entry_id), WorkerEvent.model_validate_json(raw or b"")))
        except ValidationError as exc:
            log.warning("skipping registry entry %s: %s", as_text(entry_id), exc)
    return decoded


def _after(page: Sequence[Entry]) -> str | None:
    """Where the next XRANGE page starts (exclusive), or None after the last page."""
    return f"({as_text(page[-1][0])}" if len(page) == PAGE else None


def _reduce(entries: Iterable[Entry], settings: Settings, now: datetime | None) -> list[WorkerInfo]:
    now = now or datetime.now(UTC)
    return workers_from(decode_entries(entries), now, settings.worker_lost_after_seconds)


def read_workers(
    client: redis.Redis, keys: Keys, settings: Settings, now: datetime | None = None
) -> list[WorkerInfo]:
    """Every worker in the registry stream (read whole, a page at a time)."""
    entries: list[Entry] = []
    start: str | None = "-"
    while start is not None:
        page: list[Entry] = client.xrange(keys.registry, start, "+", count=PAGE) or []
        entries += page
        start = _after(page)
    return _reduce(entries, settings, now)


async def read_workers_async(
    client: aioredis.Redis, keys: Keys, settings: Settings, now: datetime | None = None
) -> list[WorkerInfo]:
    """``read_workers`` for asyncio callers (the API)."""
    entries: list[Entry] = []
    start: str | None = "-"
    while start is not None:
        page: list[Entry] = await client.xrange(keys.registry, start, "+", count=PAGE) or []
        entries += page
        start = _after(page)
    return _reduce(entries, settings, now)


# -- who serves a step -------------------------------------------------------------------

WORKER_COMMAND = "celery -A flowqueue worker"


def step_queue(app: Any, task_name: str) -> str:
    """The queue Celery routes ``task_name`` to (its ``queue`` option, ``task_routes``,
    else the default queue), as ``apply_async`` routes it."""
    task = app.tasks[task_name]
    options = {"queue": getattr(task, "queue", None)}
    try:
        route = app.amqp.router.route(options, task_name, task_type=task)
    except Exception:  # a router that needs the real arguments: assume the default
        return str(app.conf.task_default_queue)
    queue = route.get("queue")
    return str(getattr(queue, "name", queue) or app.conf.task_default_queue)


def serves(worker: WorkerInfo, flow: str, step: str, queue: str) -> bool:
    """Whether ``worker`` is online, has ``step`` of ``flow`` and consumes ``queue``."""
    has_step = step in worker.flows.get(flow, ())
    return worker.status == "online" and has_step and queue in worker.queues


def unserved(
    workers: Iterable[WorkerInfo], flow: str, queues: dict[str, str], default_queue: str
) -> str | None:
    """A one-line warning if no online worker serves one of the steps of ``flow`` in
    ``queues`` (step -> its queue), with the command that starts one; None if each has
    a worker."""
    known = list(workers)
    missing = {
        step: queue
        for step, queue in queues.items()
        if not any(serves(worker, flow, step, queue) for worker in known)
    }
    if not missing:
        return None
    first, *others = missing  # the first in ``queues`` order: an entry step, when one is
    more = f" (nor {len(others)} more of its steps)" if others else ""
    wanted = sorted(set(missing.values()))
    queues_named = f"queue{'s' * (len(wanted) > 1)} {', '.join(map(repr, wanted))}"
    on = "" if wanted == [default_queue] else f" on {queues_named}"
    command = WORKER_COMMAND if not on else f"{WORKER_COMMAND} -Q {','.join(wanted)}"
    serves_none = f"no live worker serves step {first!r} of flow {flow!r}{more}{on}"
    return f"{serves_none}; start one with: {command}"


# -- writing -----------------------------------------------------------------------------


def append_event(client: redis.Redis, keys: Keys, settings: Settings, event: WorkerEvent) -> str:
    """XADD the event, trimming entries older than the retention; returns its id."""
    min_id = now_ms() - int(settings.registry_retention_seconds * 1000)
    entry_id = client.xadd(
        keys.registry,
        {EVENT_FIELD: event.model_dump_json()},
        minid=str(max(min_id, 0)),
        approximate=True,  # whole radix-tree nodes only: trimming stays O(1) per append
    )
    return as_text(entry_id)


def describe_worker(app: Any, consumer: Any) -> dict[str, Any]:
    """``worker.registered`` data of a Celery worker, from its app and its ``Consumer``
    (the ``worker_ready`` sender). Best effort: a missing attribute leaves a field out."""
    consumed = getattr(getattr(consumer, "task_consumer", None), "queues", None) or ()
    queues = [q.name for q in consumed] or sorted(app.amqp.queues)
    flows = {name: list(graph.steps) for name, graph in app.flowqueue.flows.flows.items()}
    controller = getattr(consumer, "controller", None)
    return {
        "queues": queues,
        "flows": flows,
        "concurrency": getattr(controller, "concurrency", None),
        "version": version("flowqueue"),
    }


def celery_live_numbers() -> dict[str, Any]:
    """Requests this worker holds now (the pool's processes report to the main one)."""
    from celery.worker import state

    return {"active": len(state.active_requests), "reserved": len(state.reserved_requests)}


class WorkerRegistration:
    """One worker's registry presence: ``start`` registers and starts the heartbeat
    thread, ``stop`` ends it and deregisters. Redis trouble is logged, never raised: the
    registry must not take a worker down. A no-op on ``memory://`` (there is no Redis)."""

    def __init__(self, settings: Settings, live: LiveNumbers | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._live = live
        self._client: redis.Redis | None = None
        self._hostname = ""
        self._info: dict[str, Any] = {}
        self._registered_ms: int | None = None  # when worker.registered last got through
        self._registration = ""  # its entry id in the registry
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, hostname: str, info: dict[str, Any]) -> None:
        if self.settings.redis_url == MEMORY_URL or self._thread is not None:
            return
        self._hostname = hostname
        self._info = {"pid": os.getpid(), **info, "started_at": format_ts(ms_to_datetime(now_ms()))}
        timeout = max(1.0, min(5.0, self.settings.heartbeat_seconds))  # never hang a beat
        self._client = redis.Redis.from_url(
            self.settings.redis_url,
            client_name=f"flowqueue:{self.settings.key_prefix}:registry",
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),  # one quick reconnect; the next beat is the real retry
        )
        self._stop.clear()
        self.beat()  # registers
        self._thread = threading.Thread(target=self._loop, name="flowqueue-registry", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        """Append one event: ``worker.registered`` if the last one did not get through, is
        half way to being trimmed, or is gone (Redis restarted without its data, or was
        flushed), else ``worker.heartbeat``."""
        if self._client is None:
            return
        at = now_ms()
        retention_ms = self.settings.registry_retention_seconds * 1000
        register = (
            self._registered_ms is None
            or at - self._registered_ms >= retention_ms / 2
            or self._registration_gone()
        )
        kind: WorkerEventKind = "worker.registered" if register else "worker.heartbeat"
        data = dict(self._info) if register else {"pid": self._info["pid"], **self._numbers()}
        entry = self._append(WorkerEvent.new(kind, self._hostname, data, at))
        if entry and register:
            self._registered_ms, self._registration = at, entry

    def _registration_gone(self) -> bool:
        assert self._client is not None
        entry = self._registration
        try:
            return not self._client.xrange(self.keys.registry, entry, entry)
        except redis.RedisError:
            return False  # Redis away: the append says so, and the next beat looks again

    def _numbers(self) -> dict[str, Any]:
        if self._live is None:
            return {}
        try:
            return self._live()
        except Exception:  # numbers are a nicety; the heartbeat itself matters
            log.debug("worker registry: live numbers failed", exc_info=True)
            return {}

    def _append(self, event: WorkerEvent) -> str:
        """The event's entry id; "" if it did not get through."""
        assert self._client is not None
        try:
            return append_event(self._client, self.keys, self.settings, event)
        except redis.RedisError as exc:  # Redis away: say so and try again next beat
            log.warning("worker registry: could not append %s: %s", event.kind, exc)
            return ""

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_seconds):
            try:
                self.beat()
            except Exception:  # never let the heartbeat thread die
                log.exception("worker registry: heartbeat failed")

    def stop(self) -> None:
        """Stop heartbeating, then deregister (in this order: no beat after the goodbye)."""
        if self._client is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        data = {"pid": self._info["pid"]}
        self._append(WorkerEvent.new("worker.deregistered", self._hostname, data))
        self._client.close()
        self._client = None
        self._registered_ms = None
