"""One error tree: every error a user can cause is a ``FlowqueueError``.

Each message says what was wrong and what to do about it; what the error is about
travels with it as data (``run_id``, ``flow``, ``step``, ``trigger_id``), so a handler
need not parse the message, and the API puts the same fields in its problem responses.
"""

from __future__ import annotations


class FlowqueueError(Exception):
    """Root of every error flowqueue raises on purpose."""

    def __init__(
        self,
        message: str = "",
        *,
        run_id: str | None = None,
        flow: str | None = None,
        step: str | None = None,
        trigger_id: str | None = None,
    ) -> None:
        super().__init__(message)  # args stay (message,): Celery re-creates it from them
        self.run_id = run_id
        self.flow = flow
        self.step = step
        self.trigger_id = trigger_id

    @property
    def about(self) -> dict[str, str]:
        """The fields that are known: ``{"run_id": ..., "flow": ...}``."""
        fields = {"run_id": self.run_id, "flow": self.flow, "step": self.step}
        fields["trigger_id"] = self.trigger_id
        return {k: v for k, v in fields.items() if isinstance(v, str)}


class ConfigurationError(FlowqueueError):
    """Settings or environment are wrong (bad URL, missing binary, ...)."""


class InvalidEvent(FlowqueueError):
    """An event failed validation; nothing was written."""


class UnknownEventKind(InvalidEvent):
    """The event's kind is not one of the documented kinds."""


class NonJsonPayload(InvalidEvent):
    """The event's data or meta holds something JSON cannot represent."""


class PayloadTooLarge(InvalidEvent):
    """The encoded event is larger than ``FLOWQUEUE_MAX_PAYLOAD_BYTES``."""


class InvalidIdentifier(InvalidEvent):
    """A run id, flow name or step name has characters that are not allowed."""


class MixedRunsError(InvalidEvent):
    """``append_many`` was given events of more than one run (appends are atomic per run)."""


class EmbeddedRedisError(ConfigurationError):
    """A throwaway redis-server could not be found or started."""


class FlowDefinitionError(ConfigurationError):
    """A step or flow is declared inconsistently (missing entry, bad subscription, ...)."""


class UnknownFlow(FlowqueueError):
    """No flow of that name is registered on the app."""


class UnknownRun(FlowqueueError):
    """No run with that id has any events."""


class RunTimeout(FlowqueueError, TimeoutError):
    """A run did not end (or reach the state waited for) within the time given."""


class InvalidInput(FlowqueueError):
    """Input to a flow or step failed its model, or is not JSON; nothing was written."""


class StepCalledDirectly(FlowqueueError):
    """A step task was called or sent without flow context (use ``start_flow``)."""


class NonRetriableError(FlowqueueError):
    """Raise from a step to fail it for good, whatever its retry policy says.

    Any exception with ``retriable = False`` has the same effect.
    """


class AwaitTimeout(FlowqueueError):
    """An await's timeout passed first; raised from the await call (a step can catch it).

    Not retriable: a retry replays the step and meets the same recorded timeout.
    """

    retriable = False


class NonDeterminismError(FlowqueueError):
    """A replayed step reached its awaits in a different order than the first time."""

    retriable = False


class UnknownTrigger(FlowqueueError):
    """No trigger has that id (it never existed, or was used long ago)."""


class UnknownSchedule(FlowqueueError):
    """No schedule has that name, in the code of this process or of any worker."""

    def __init__(self, message: str = "", *, schedule: str = "", **about: str | None) -> None:
        super().__init__(message, **about)
        self.schedule = schedule


class TriggerAlreadyUsed(FlowqueueError):
    """The trigger's await was already resumed, timed out or cancelled."""


class InvalidSignal(InvalidEvent):
    """An external event's name or payload is not acceptable; nothing was written."""


class BrokerUnavailable(FlowqueueError):
    """The Celery broker refused a message; what could not be sent was undone or ended."""


class ArchiveUnavailable(FlowqueueError):
    """The Postgres archive (``FLOWQUEUE_ARCHIVE_URL``) could not be reached or refused a
    query; runs still in Redis read as before, and the archiver copies ended runs later."""


class RunAlreadyEnded(FlowqueueError):
    """The run is completed, failed or cancelled already (nothing to cancel)."""


class RunNotFailed(FlowqueueError):
    """Only a failed run can be retried from its failure (``flowqueue rerun`` starts a new
    run of any run instead)."""


class RunAlreadyExists(FlowqueueError):
    """A run with that id was started before; start the new one with a new id."""


class InvalidAwait(FlowqueueError, ValueError):
    """An await was given a duration or a moment it cannot wait for."""


class ExportFailed(FlowqueueError):
    """An export's sink did not take a batch of events (``runtime/exporter.py``); the
    exporter hands the same batch again after a pause."""


class WebhookRejected(FlowqueueError):
    """A webhook delivery was refused before anything was written.

    ``reason`` says why: ``missing_header``, ``malformed_header``, ``stale_timestamp``,
    ``future_timestamp``, ``bad_signature``, ``body_too_large`` or ``replayed`` (then
    ``run_id`` is the run the first delivery started). Messages never hold a secret.
    """

    def __init__(
        self, message: str = "", *, reason: str = "bad_signature", **about: str | None
    ) -> None:
        super().__init__(message, **about)
        self.reason = reason
