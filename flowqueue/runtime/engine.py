"""flowqueue's part of one Celery app (``app.flowqueue``): settings, store, coordinator,
flows and orchestrator. Connections are per process (Celery's prefork pool forks)."""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from flowqueue.authoring.flows import FlowRegistry, import_workers
from flowqueue.authoring.retry import Retry
from flowqueue.backend.coordinator import RunCoordinator
from flowqueue.backend.redis.coordinator import RedisRunCoordinator
from flowqueue.backend.redis.embedded import EmbeddedRedis
from flowqueue.backend.redis.keys import Keys
from flowqueue.backend.redis.store import RedisEventStore
from flowqueue.backend.store import EventStore
from flowqueue.errors import ConfigurationError
from flowqueue.runtime._leases import LeaseKeeper
from flowqueue.runtime._orchestrator import Orchestrator
from flowqueue.runtime._priorities import StepPriorities, step_priorities
from flowqueue.runtime._timers import TimerPump
from flowqueue.runtime.workers import WorkerRegistration, celery_live_numbers
from flowqueue.settings import Settings

MEMORY_URL = "memory://"


@dataclass
class _ProcessResources:
    pid: int
    store: EventStore
    coordinator: RunCoordinator
    leases: LeaseKeeper


class Flowqueue:
    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.lease_ms = int(settings.step_lease_seconds * 1000)
        self.keys = Keys(settings.key_prefix)
        self.orchestrator = Orchestrator(self)
        self.default_retry = Retry(
            attempts=settings.retry_attempts,
            delay=settings.retry_delay,
            max_delay=settings.retry_max_delay,
        )
        self.timer_pump = TimerPump(self)
        # The worker's presence in the registry stream (started in the worker main process).
        self.worker_registration = WorkerRegistration(settings, live=celery_live_numbers)
        self._resources: _ProcessResources | None = None
        self._priorities: StepPriorities | None = None
        self._registry: tuple[int, FlowRegistry] | None = None
        self._workers_imported = False
        self._lock = threading.RLock()
        self._embedded: tuple[str, weakref.finalize[[], Flowqueue]] | None = None

    # -- per-process connections ------------------------------------------------------

    def _process(self) -> _ProcessResources:
        res = self._resources
        if res is None or res.pid != os.getpid():
            with self._lock:
                res = self._resources
                if res is None or res.pid != os.getpid():
                    res = self._resources = self._connect()
        return res

    def _connect(self) -> _ProcessResources:
        store = RedisEventStore(self.backend_settings())
        if self.settings.redis_url == MEMORY_URL:
            self.timer_pump.start()  # no worker pumps this process's timers: it does
        leases = LeaseKeeper(self.lease_ms)
        return _ProcessResources(os.getpid(), store, RedisRunCoordinator(store), leases)

    def backend_settings(self) -> Settings:
        """The settings the backend connects with. ``memory://`` is a ``redis-server`` of
        this app's own, started on first use in a temporary directory and stopped with the
        app (or the process): the same Lua scripts as production, nothing kept."""
        if self.settings.redis_url != MEMORY_URL:
            return self.settings
        with self._lock:
            if self._embedded is None:
                server = EmbeddedRedis().start()
                self._embedded = (server.url, weakref.finalize(self, server.stop))
        return self.settings.model_copy(update={"redis_url": self._embedded[0]})

    def close(self) -> None:
        """Stop this process's timer pump and connections, and a ``memory://`` server."""
        self.timer_pump.stop()
        if self._resources is not None:
            self._resources.store.close()
        self._resources = None
        if self._embedded is not None:
            self._embedded[1]()
            self._embedded = None

    @property
    def store(self) -> EventStore:
        return self._process().store

    @property
    def coordinator(self) -> RunCoordinator:
        return self._process().coordinator

    @property
    def leases(self) -> LeaseKeeper:
        return self._process().leases

    def reset_after_fork(self) -> None:
        """Drop connections inherited from a parent process (never shared across forks)."""
        self._resources = None
        self._lock = threading.RLock()

    @property
    def priorities(self) -> StepPriorities:
        """Read on first use, once the app's configuration is final."""
        if self._priorities is None:
            self._priorities = step_priorities(self.app.conf.broker_url, self.settings)
        return self._priorities

    @property
    def timer_horizon_ms(self) -> int:
        """How early timers go to Celery as countdown messages: never near the broker's
        visibility timeout (a countdown held past it is delivered twice), and not at all
        early when tasks run eagerly (eager mode ignores countdowns)."""
        conf = self.app.conf
        if conf.task_always_eager:
            return 0
        visibility = (conf.broker_transport_options or {}).get("visibility_timeout", 3600)
        horizon = min(self.settings.timer_horizon_seconds, float(visibility) / 4)
        return int(horizon * 1000)

    # -- flows ------------------------------------------------------------------------

    def import_workers(self) -> None:
        if not self._workers_imported:
            import_workers(self.settings.workers, default=Settings.model_fields["workers"].default)
            self._workers_imported = True

    @property
    def registry(self) -> FlowRegistry:
        """The app's flows, rebuilt when Celery's task registry changes."""
        self.import_workers()
        tasks = self.app.tasks  # finalizes the app: shared @step tasks bind to it
        cached = self._registry
        if cached is None or cached[0] != len(tasks):
            cached = self._registry = (len(tasks), FlowRegistry.from_tasks(list(tasks.values())))
        return cached[1]


def flowqueue_of(app: Any) -> Flowqueue:
    fq = getattr(app, "flowqueue", None)
    if not isinstance(fq, Flowqueue):
        raise ConfigurationError(
            f"flowqueue is not installed on Celery app {getattr(app, 'main', app)!r}; call "
            "flowqueue.install(app) where you create the app."
        )
    return fq
