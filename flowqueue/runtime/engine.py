"""flowqueue's part of one Celery app (``app.flowqueue``): it puts together the
connections, the flow registry, the orchestrator, the timer pump and the middleware,
and runs each delivery of a step (the ``StepHost`` that ``FlowTask`` calls)."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from celery.exceptions import Ignore

from flowqueue.authoring.context import FlowContext
from flowqueue.authoring.flows import FlowRegistry, import_workers
from flowqueue.authoring.retry import Retry
from flowqueue.authoring.step import FlowTask
from flowqueue.backend.archive import Archive
from flowqueue.backend.redis.coordinator import RedisRunCoordinator
from flowqueue.backend.redis.schedules import RedisSchedules
from flowqueue.backend.redis.triggers import TriggerRegistry
from flowqueue.backend.store import EventStore
from flowqueue.errors import ConfigurationError
from flowqueue.model.header import StepHeader
from flowqueue.model.timers import now_ms
from flowqueue.runtime import _standard_middleware as standard
from flowqueue.runtime._archiver import Archiver
from flowqueue.runtime._awaits import StepAwaits
from flowqueue.runtime._connections import Connections, open_archive
from flowqueue.runtime._monitor import Monitor
from flowqueue.runtime._orchestrator import Orchestrator
from flowqueue.runtime._runner import run_delivery
from flowqueue.runtime._schedules import Firing, SchedulePump
from flowqueue.runtime._timers import TimerPump
from flowqueue.runtime.middleware import Delivery, Middleware
from flowqueue.runtime.workers import WorkerRegistration, celery_live_numbers
from flowqueue.settings import Settings

log = logging.getLogger(__name__)
SCHEDULE_STARTERS = 4  # threads that start scheduled runs, off the timer thread
# How early a tick is claimed and its run started (entry steps sent with a countdown to
# the tick): enough to start a few hundred runs before it; a worker that dies holding such
# a message holds it this much longer than any other prefetched one.
SCHEDULE_LEAD_MS = 500


class Flowqueue:
    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.connections = Connections(settings, on_open=self._opened)
        self.keys = self.connections.keys
        self.orchestrator = Orchestrator(app, self.connections, lambda: self.flows)
        self.timer_pump = TimerPump(
            self.connections, self.orchestrator.fire, self._horizon_ms, self._schedule_pump
        )
        # Copies ended runs to the archive (FLOWQUEUE_ARCHIVE_URL), beside the timer pump.
        self.archiver = Archiver(self.connections) if settings.archive_url else None
        self._schedules: tuple[FlowRegistry, RedisSchedules, SchedulePump] | None = None
        self._starters: ThreadPoolExecutor | None = None
        # The worker's presence in the registry stream (started in the worker main process).
        self.worker_registration = WorkerRegistration(settings, live=celery_live_numbers)
        default_retry = Retry(
            attempts=settings.retry_attempts,
            delay=settings.retry_delay,
            max_delay=settings.retry_max_delay,
        )
        # Also records what only Celery sees of a step's process (``_celery_hooks``).
        self.retries = standard.Retries(self.connections, default_retry)
        self.middleware: list[Middleware] = [
            standard.Claim(self.connections, self.orchestrator),
            standard.LogCapture(),
            standard.Lease(self.connections),
            Monitor(self.connections),  # before Suspension: it sees the step park
            standard.Suspension(),
            self.retries,
            standard.Completion(self.connections),
        ]
        if settings.tracing:
            self.middleware.insert(0, _tracing_middleware())
        self._flows: tuple[int, FlowRegistry] | None = None
        self._workers_imported = False
        self._lock = threading.Lock()

    # -- the backend of this process ---------------------------------------------------

    @property
    def store(self) -> EventStore:
        return self.connections.store

    @property
    def coordinator(self) -> RedisRunCoordinator:
        return self.connections.coordinator

    def backend_settings(self) -> Settings:
        return self.connections.backend_settings()

    def open_archive(self) -> Archive | None:
        """A new connection to the archive (``FLOWQUEUE_ARCHIVE_URL``), for a store of
        the caller's own; None without one."""
        return open_archive(self.settings)

    def _opened(self) -> None:
        if self.connections.memory:
            self.timer_pump.start()  # no worker pumps this process's timers: it does
            # Finalizers run newest first at exit: the pump stops before its server does.
            weakref.finalize(self, self.timer_pump.stop)
            if self.archiver is not None:
                self.archiver.start()
                weakref.finalize(self, self.archiver.stop)

    @property
    def schedules(self) -> RedisSchedules:
        """The schedules' state in Redis (marks, pauses), on this process's connection."""
        return RedisSchedules(self.coordinator.client, self.keys)

    @property
    def trigger_registry(self) -> TriggerRegistry:
        """The trigger registry stream, on this process's connection."""
        return TriggerRegistry(self.coordinator.client, self.keys)

    def declare_triggers(self, worker: str) -> int:
        """Record this worker's start triggers in the trigger registry (those new, changed
        or gone since the last worker of its flows said); the number of events written.
        Redis trouble is logged, never raised: it must not stop a worker starting."""
        flows = self.flows
        try:
            return self.trigger_registry.declare(
                flows.declarations(), flows.flows, worker, now_ms()
            )
        except redis.RedisError as exc:
            log.warning("trigger registry: could not record this worker's triggers: %s", exc)
            return 0

    def close(self) -> None:
        """Stop this process's timer pump and connections, and a ``memory://`` server."""
        self.timer_pump.stop()
        if self.archiver is not None:
            self.archiver.stop()
        if self._starters is not None:
            self._starters.shutdown(wait=True)
            self._starters = None
        self.connections.close()

    # -- schedules ---------------------------------------------------------------------

    def _schedule_pump(self) -> SchedulePump | None:
        """The pump of the app's schedules, made anew when the flows or this process's
        connection change (read by the timer thread on each pass)."""
        flows = self.flows
        if not flows.schedules:
            return None
        made = self._schedules
        if made is None or made[0] is not flows or made[1].client is not self.coordinator.client:
            backend = self.schedules
            specs = flows.schedules.values()
            pump = SchedulePump(
                specs,
                backend,
                self._start_firing,
                lead_ms=SCHEDULE_LEAD_MS,
                submit=self._submit_start,
            )
            made = self._schedules = (flows, backend, pump)
        return made[2]

    def _submit_start(self, start: Callable[[], None]) -> None:
        """Start a firing's run on a starter thread: a tick won by one worker for many
        schedules must not hold up the timer thread (timers, the next ticks)."""
        with self._lock:
            if self._starters is None:
                self._starters = ThreadPoolExecutor(SCHEDULE_STARTERS, "flowqueue-schedule")
            starters = self._starters
        starters.submit(start)

    def _start_firing(self, firing: Firing) -> None:
        spec = firing.spec
        trigger = {"kind": "schedule", "name": spec.name, "tick": firing.tick_ms}
        countdown = max(0.0, (firing.tick_ms - now_ms()) / 1000) or None
        self.orchestrator.start_owed(spec.flow, spec.input, firing.run_id, trigger, countdown)

    def _horizon_ms(self) -> int:
        """How early timers go to Celery as countdown messages: never near the broker's
        visibility timeout (a countdown held past it is delivered twice), and not at all
        early when tasks run eagerly (eager mode ignores countdowns)."""
        conf = self.app.conf
        if conf.task_always_eager:
            return 0
        visibility = (conf.broker_transport_options or {}).get("visibility_timeout", 3600)
        horizon = min(self.settings.timer_horizon_seconds, float(visibility) / 4)
        return int(horizon * 1000)

    # -- steps -------------------------------------------------------------------------

    def add_middleware(
        self, middleware: Middleware, *, before: type[Middleware] | None = None
    ) -> None:
        """Add ``middleware`` at the end, or just before the first of type ``before``."""
        types = [type(m) for m in self.middleware]
        at = types.index(before) if before is not None else len(types)
        self.middleware.insert(at, middleware)

    def run_step(self, task: FlowTask, header: StepHeader, args: tuple[Any, ...]) -> Any:
        step = self.flows.flow(header.flow).step(header.step)
        delivery = Delivery(task, header, step, args[0] if args else None)
        result = run_delivery(delivery, self.middleware, self._context)
        if not delivery.attempt:  # skipped (the claim sets the attempt of a delivery it runs)
            # No task-succeeded: Flower keeps the state of the delivery that runs the step.
            raise Ignore()
        return result

    def _context(self, delivery: Delivery) -> FlowContext:
        header, attempt = delivery.header, delivery.attempt
        awaits = StepAwaits(
            self.connections, header, attempt, delivery.arg, resumed=delivery.resumed
        )
        return FlowContext(
            header,
            attempt,
            delivery.arg,
            delivery.task.request.id,
            store=self.connections.store,
            emit=lambda name, payload: self.orchestrator.emit(
                header, delivery.attempt, name, payload, delivery.deferred
            ),
            awaits=awaits,
            claim=delivery.claim,
        )

    # -- flows -------------------------------------------------------------------------

    def import_workers(self) -> None:
        if not self._workers_imported:
            import_workers(self.settings.workers, default=Settings.model_fields["workers"].default)
            self._workers_imported = True

    @property
    def flows(self) -> FlowRegistry:
        """The app's flow registry, rebuilt when Celery's task registry changes."""
        self.import_workers()
        tasks = self.app.tasks  # finalizes the app: shared @step tasks bind to it
        cached = self._flows
        if cached is None or cached[0] != len(tasks):
            with self._lock:
                cached = self._flows = (len(tasks), FlowRegistry.from_tasks(list(tasks.values())))
        return cached[1]


def flowqueue_of(app: Any) -> Flowqueue:
    fq = getattr(app, "flowqueue", None)
    if not isinstance(fq, Flowqueue):
        raise ConfigurationError(
            f"flowqueue is not installed on Celery app {getattr(app, 'main', app)!r}; call "
            "flowqueue.install(app) where you create the app."
        )
    return fq


def _tracing_middleware() -> Middleware:
    """The OpenTelemetry middleware (FLOWQUEUE_TRACING), with a hint if its extra is missing."""
    try:
        from flowqueue.runtime._tracing import Tracing
    except ImportError as exc:
        raise ConfigurationError(
            f"FLOWQUEUE_TRACING=true needs OpenTelemetry ({exc.name} is missing): "
            "pip install 'flowqueue[otel]', or set FLOWQUEUE_TRACING=false."
        ) from None
    return Tracing()
