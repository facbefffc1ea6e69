"""Steps are Celery tasks: the ``FlowTask`` base class and the ``@step`` decorator.

``@step(flow=..., ...)`` is ``shared_task(base=FlowTask, ...)``: the task binds to every
Celery app (the default ``flowqueue.app`` or your own after ``flowqueue.install``), and
Flower, ``celery inspect``, routing and queues see an ordinary task.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from celery import Task, shared_task
from pydantic import BaseModel

from flowqueue.authoring.awaits import AwaitSpec
from flowqueue.authoring.retry import Retry
from flowqueue.authoring.schedules import Schedule
from flowqueue.authoring.webhooks import Webhook
from flowqueue.errors import ConfigurationError, FlowDefinitionError, StepCalledDirectly
from flowqueue.model.header import StepHeader, header_of

F = TypeVar("F", bound=Callable[..., Any])


@runtime_checkable
class StepHost(Protocol):
    """What runs a delivery of a step: ``app.flowqueue`` once flowqueue is installed."""

    def run_step(self, task: FlowTask, header: StepHeader, args: tuple[Any, ...]) -> Any: ...


class FlowTask(Task):  # type: ignore[misc]  # celery ships no type hints
    """Base class of every step. Options are class attributes, as Celery task options are."""

    typing = False  # the message carries the step input only; ctx is added here
    flow: str | Sequence[str] | None = None
    entry: bool = False
    on_event: Sequence[str] = ()  # signal names that start a run (entry steps only)
    webhook: Webhook | None = None  # the webhook that starts a run (entry steps only)
    schedules: Sequence[Schedule] = ()  # schedules that start runs (entry steps only)
    subscribes: Sequence[str] = ()
    emits: Sequence[str] = ()
    input_model: type[BaseModel] | None = None
    step_name: str | None = None
    flow_retry: Retry | None = None  # None: the app's default policy
    await_before: AwaitSpec | None = None
    await_after: AwaitSpec | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        header = self.flow_header()
        if header is None:
            raise StepCalledDirectly(
                f"step task {self.name!r} was called without flow context; start its flow "
                "with flowqueue.start_flow(...) (or `flowqueue start FLOW`) instead.",
                step=self.name,
            )
        host = getattr(self.app, "flowqueue", None)
        if not isinstance(host, StepHost):
            raise ConfigurationError(
                f"flowqueue is not installed on Celery app {self.app.main!r}; call "
                "flowqueue.install(app) where you create the app."
            )
        return host.run_step(self, header, args)

    def flow_header(self) -> StepHeader | None:
        return header_of(self.request)


def step(
    *,
    flow: str | Sequence[str],
    entry: bool = False,
    on_event: Sequence[str] | str = (),
    webhook: Webhook | None = None,
    schedule: Schedule | Sequence[Schedule] = (),
    subscribes: Sequence[str] | str = (),
    emits: Sequence[str] | str = (),
    input: type[BaseModel] | None = None,
    retry: Retry | None = None,
    await_before: AwaitSpec | None = None,
    await_after: AwaitSpec | None = None,
    name: str | None = None,
    task_name: str | None = None,
    **task_options: Any,
) -> Callable[[F], F]:
    """Declare a flow step; the function takes ``(ctx, input)``.

    ``input`` (or a pydantic-model annotation of the second parameter) validates the
    step's input: for an entry step, the run input (checked before the run is written);
    for others, the dict of subscribed event payloads by name. ``on_event`` (entry steps
    only) names the signals that start a run of the flow, the signal's payload as its
    input: the input model is then the signal's schema. ``webhook`` (entry steps only; a
    ``Webhook``) starts a run on each verified ``POST /api/_webhooks/<name>``. ``retry`` is its
    ``Retry`` policy (default: the app's, from ``FLOWQUEUE_RETRY_*``). ``await_before`` /
    ``await_after`` (``Sleep``, ``WaitForEvent``, ``WaitForTrigger``) pause the step
    before its function runs (the result is ``ctx.awaited``) or after it returned (the
    function is not run again on resume). ``name`` is the step's name in its flows
    (default: the function name), ``task_name`` the Celery task name (default:
    ``module.function``). Other keyword arguments are Celery task options (``queue``,
    ``soft_time_limit``, ``rate_limit``, ...). ``schedule`` (entry steps only; a
    ``Schedule`` or a list of them) starts a run of each of the step's flows at its ticks.
    """
    if task_name is not None:
        task_options["name"] = task_name

    def decorate(fn: F) -> F:
        _claim_task_name(task_name or _default_task_name(fn), fn, name)
        task = shared_task(
            base=FlowTask,
            flow=flow,
            entry=entry,
            on_event=(on_event,) if isinstance(on_event, str) else tuple(on_event),
            webhook=webhook,
            schedules=(schedule,) if isinstance(schedule, Schedule) else tuple(schedule),
            subscribes=(subscribes,) if isinstance(subscribes, str) else tuple(subscribes),
            emits=(emits,) if isinstance(emits, str) else tuple(emits),
            input_model=input or _annotated_model(fn),
            flow_retry=retry,
            await_before=await_before,
            await_after=await_after,
            step_name=name,
            **task_options,
        )(fn)
        return typing.cast(F, task)

    return decorate


# Like Celery's list of shared tasks, task names are process-wide: every app registers
# every step, so two functions under one name would collide in all of them. Celery only
# warns and keeps the first; a flow would silently lose a step.
_claimed: dict[str, tuple[Callable[..., Any], str | None]] = {}


def _default_task_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__name__}"  # Celery's default (gen_task_name)


def _claim_task_name(task_name: str, fn: Callable[..., Any], step_name: str | None) -> None:
    """Raise ``FlowDefinitionError`` if another function already has ``task_name``.

    A module imported again (reload) declares the same function anew, with new code: that
    is the same step. A factory makes functions that share their code: those collide."""
    previous = _claimed.get(task_name)
    if previous is not None:
        other, other_step = previous
        same_place = _where(other) == _where(fn)
        same_code = getattr(other, "__code__", None) is getattr(fn, "__code__", None)
        if other is not fn and (not same_place or same_code):
            raise FlowDefinitionError(
                f"two steps share the Celery task name {task_name!r}: "
                f"{_described(other, other_step)} and {_described(fn, step_name)}. Pass "
                "task_name='...' to @step to give each its own task (name= only names the "
                "step inside its flow).",
                step=step_name or fn.__name__,
            )
    _claimed[task_name] = (fn, step_name)


def _where(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{getattr(fn, '__qualname__', fn.__name__)}"


def _described(fn: Callable[..., Any], step_name: str | None) -> str:
    return _where(fn) if step_name is None else f"{_where(fn)} (step {step_name!r})"


def _annotated_model(fn: Callable[..., Any]) -> type[BaseModel] | None:
    """The pydantic model a step's input parameter is annotated with, if any."""
    params = list(inspect.signature(fn).parameters)
    if len(params) < 2:
        return None
    try:
        hint = typing.get_type_hints(fn).get(params[1])
    except Exception:  # unresolvable forward references: no model, as if unannotated
        return None
    return hint if isinstance(hint, type) and issubclass(hint, BaseModel) else None
