"""What Celery's monitors (Flower, ``celery events``) see of a step.

A monitor builds each task's state from Celery's task events (``celery.events.state``).
Every delivery of a step has the step instance's task id (``<run>:<step>``), so Flower
shows one task per step of a run, and flowqueue makes that task tell the truth:

- its name is ``<flow>/<step>``: each message's ``shadow`` (``/`` occurs in neither
  name), in its ``task-sent`` too (``name_sent_events``); the real task name still
  routes the message and picks the task;
- a failed attempt that runs again ends with Celery's ``Retry`` (``task-retried``: state
  ``RETRY``, with the exception); the next attempt's message carries ``retries``, so its
  ``task-received`` brings the count;
- a step parked at an await sends ``task-awaiting`` (state ``AWAITING``), and a delivery
  that resumes it sends ``task-resumed`` (state ``RESUMED``).

Celery turns an unknown ``task-<x>`` event into state ``X``, ranked below SUCCESS and
FAILURE and above every other state (``celery.states.PRECEDENCE``): a late
``task-received`` or ``task-started`` cannot hide it, and the step's end replaces it.
``RESUMED`` is there because ``task-started`` cannot replace ``AWAITING``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import Ignore, Retry

from flowqueue.model.awaits import AwaitRecord, Suspended, iso_of_ms
from flowqueue.model.timers import TimerSpec
from flowqueue.runtime._connections import Connections
from flowqueue.runtime.middleware import Delivery, Middleware

log = logging.getLogger(__name__)

AWAITING = "task-awaiting"  # Flower state AWAITING
RESUMED = "task-resumed"  # Flower state RESUMED
_RESUMING = frozenset({"wake", "event", "timeout", "resume"})  # timers that end an await


def monitor_name(flow: str, step: str) -> str:
    """The name monitors show for a step: its messages' ``shadow``."""
    return f"{flow}/{step}"


def name_sent_events(app: Any) -> None:
    """Make ``app``'s ``task-sent`` events name a message's ``shadow``, as its
    ``task-received`` does. Celery puts the task's own name there, and a monitor that gets
    the ``task-sent`` last (it travels on the publisher's connection, the other on the
    worker's) would show the task name, not ``<flow>/<step>``. Only this app's messages
    are touched, and only those with a shadow."""
    amqp = app.amqp
    create = amqp.create_task_message
    if getattr(create, "flowqueue_names_sent_events", False):
        return

    def create_task_message(*args: Any, **kwargs: Any) -> Any:
        message = create(*args, **kwargs)
        shadow = message.headers.get("shadow") if isinstance(message.headers, dict) else None
        if shadow and message.sent_event is not None:
            message.sent_event["name"] = shadow
        return message

    create_task_message.flowqueue_names_sent_events = True  # type: ignore[attr-defined]
    amqp.create_task_message = create_task_message


def attempt_over(delivery: Delivery, failure: Exception, delay: float) -> Exception:
    """What ends a failed attempt that runs again in ``delay`` seconds: Celery's
    ``Retry`` (it sends nothing; the durable retry timer does). ``Ignore`` when eager:
    nothing watches, and ``task_eager_propagates`` would raise ``Retry`` to the caller."""
    if delivery.task.request.is_eager:
        ignored: Exception = Ignore()
        return ignored
    retry: Exception = Retry(exc=failure, when=round(delay, 3))
    return retry


class Monitor(Middleware):
    """Sends ``task-awaiting`` when the step parks and ``task-resumed`` when a delivery
    that ends an await runs it. Sits after the claim and before ``Suspension``."""

    def __init__(self, connections: Connections) -> None:
        self.connections = connections

    def before_step(self, delivery: Delivery) -> None:
        timer = delivery.header.timer
        if timer and TimerSpec.model_validate_json(timer).kind in _RESUMING:
            send(delivery, RESUMED, result=None)  # clears what it awaited

    def after_failure(self, delivery: Delivery, exc: BaseException) -> None:
        if not isinstance(exc, Suspended):
            return
        header = delivery.header
        try:
            parked = _parked(self.connections.coordinator.await_records(header.run_id, header.step))
            fields = None if parked is None else _described(*parked)
        except Exception as error:  # the await is recorded; only the monitor's view is lost
            log.warning("no task-awaiting for %s/%s: %s", header.run_id, header.step, error)
            return
        if fields is not None:  # None: the run ended meanwhile, or the await resolved
            send(delivery, AWAITING, **fields)


def send(delivery: Delivery, type_: str, **fields: Any) -> None:
    """Send a task event for this delivery (``retries`` = attempt - 1); never fails it.

    Sent whatever ``worker_send_task_events`` says, as Celery's ``Task.send_event`` is:
    Flower switches task events on at run time in the worker's main process only
    (``enable_events``), which the pool processes cannot see."""
    task = delivery.task
    if task.request.is_eager or not task.send_events:
        return
    try:
        task.send_event(type_, retries=max(0, delivery.attempt - 1), **fields)
    except Exception as error:  # a monitor's view must never fail a step
        header = delivery.header
        log.warning("could not send %s for %s/%s: %s", type_, header.run_id, header.step, error)


def _parked(records: dict[str, AwaitRecord]) -> tuple[str, AwaitRecord] | None:
    """The await the step parked at: its latest, if it is still pending."""
    awaits = [(key, r) for key, r in records.items() if r.kind != "once"]
    if not awaits:
        return None
    key, record = max(awaits, key=lambda item: int(item[0].rpartition("#")[2] or 0))
    return (key, record) if record.state == "pending" else None


def _described(key: str, record: AwaitRecord) -> dict[str, Any]:
    """The task-awaiting fields; ``result`` says it in words (Flower shows ``result``
    but drops fields of its own, which ``celery events`` consumers still get)."""
    due = TimerSpec.model_validate_json(record.timer).due_ms if record.timer else 0
    until = iso_of_ms(due) if due else None
    what = {"time": "time", "event": f"event {record.name!r}", "trigger": "a trigger"}
    text = f"awaiting {what.get(record.kind, record.kind)}"
    if until is not None:
        text += f" until {until}" if record.kind == "time" else f", timeout at {until}"
    return {
        "result": text,
        "awaiting": record.kind,
        "await_name": record.name,
        "await_key": key,
        "until": until,
    }
