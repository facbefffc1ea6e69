"""Errors as ``application/problem+json`` (RFC 9457): one shape for every 4xx/5xx.

Every error a caller can cause maps to a status and a ``detail`` that says what to do;
the mapping follows the ``FlowqueueError`` tree, so a new error class lands in the right
place without touching the routes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from flowqueue.errors import (
    ArchiveUnavailable,
    BrokerUnavailable,
    FlowqueueError,
    InvalidEvent,
    InvalidInput,
    PayloadTooLarge,
    RunAlreadyEnded,
    RunAlreadyExists,
    RunNotFailed,
    TriggerAlreadyUsed,
    UnknownFlow,
    UnknownRun,
    UnknownSchedule,
    UnknownTrigger,
)
from flowqueue.model.ids import STREAM_ID_PATTERN
from flowqueue.model.validation import IDENT_PATTERN
from flowqueue.settings import redact_url

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    404: "Not found",
    408: "Request timeout",
    409: "Conflict",
    413: "Payload too large",
    422: "Invalid input",
    429: "Too many requests",
    431: "Request header fields too large",
    500: "Internal error",
    503: "Unavailable",
}
# Most specific first: PayloadTooLarge is an InvalidEvent too.
STATUS_OF_ERROR: list[tuple[tuple[type[FlowqueueError], ...], int]] = [
    ((UnknownFlow, UnknownRun, UnknownTrigger, UnknownSchedule), 404),
    ((TriggerAlreadyUsed, RunAlreadyEnded, RunAlreadyExists, RunNotFailed), 409),
    ((BrokerUnavailable, ArchiveUnavailable), 503),
    ((PayloadTooLarge,), 413),
    ((InvalidInput, InvalidEvent), 422),
]
HINTS = {  # what to do, for the parameters whose rules are not obvious
    "after": "; pass an event id such as '1719667845123-0' taken from an event (each half "
    "within 64 bits)",
    "last-event-id": "; send the id of the last event received, such as '1719667845123-0' "
    "(each half within 64 bits)",
    "name": "; use 1-128 characters from letters, digits and '_.:-'",
}
# What each pattern means, for a value that does not match it (the regex itself is long).
PATTERN_HINTS = {
    IDENT_PATTERN: "; use 1-128 characters from letters, digits and '_.:-'",
    STREAM_ID_PATTERN: "; pass an id such as '1719667845123-0' taken from a record (each "
    "half within 64 bits)",
}


class Problem(BaseModel):
    """An error response (RFC 9457)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    # What the error is about, where known (FlowqueueError's data).
    run_id: str | None = None
    flow: str | None = None
    step: str | None = None
    trigger_id: str | None = None
    reason: str | None = None  # why a webhook delivery was refused (WebhookRejected.reason)

    def encoded(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()


class ApiError(StarletteHTTPException):
    """An error a route raises on purpose: its status, what to do (``detail``), headers."""


def problem(
    status: int, detail: str, headers: Mapping[str, str] | None = None, /, **about: str
) -> Response:
    body = Problem(title=TITLES.get(status, "Error"), status=status, detail=detail, **about)
    return Response(body.encoded(), status, headers, PROBLEM_JSON)


def status_of(exc: FlowqueueError) -> int:
    for cls, status in STATUS_OF_ERROR:
        if isinstance(exc, cls):
            return status
    return 400  # any other error the caller caused (e.g. a bad identifier)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer with."""
    return {
        status: {
            "description": TITLES[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def install_handlers(api: FastAPI) -> None:
    async def on_flowqueue_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, FlowqueueError)
        return problem(status_of(exc), str(exc), **exc.about)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for error in exc.errors():
            loc = [str(p) for p in error.get("loc", ())]
            hint = HINTS.get(loc[-1].lower(), "") if loc else ""
            message = error.get("msg", "")
            if error.get("type") == "string_pattern_mismatch":
                pattern = (error.get("ctx") or {}).get("pattern", "")
                hint = hint or PATTERN_HINTS.get(pattern, "")
                message = "not valid"  # the hint says what is (the pattern is long)
            parts.append(f"{'.'.join(loc)}: {message}{hint}")
        return problem(422, "; ".join(parts) or "the request does not fit the API schema")

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)  # ApiError is one too
        return problem(exc.status_code, str(exc.detail), exc.headers)

    async def on_redis_error(request: Request, exc: Exception) -> Response:
        # Redis away (restarting, unreachable): one line in the log, a 503 that says so.
        # request.app.state.flowqueue is the ApiContext (context_of: a cycle from here)
        url = redact_url(request.app.state.flowqueue.settings.redis_url)
        log.warning("%s %s: Redis at %s: %s", request.method, request.url.path, url, exc)
        return problem(
            503,
            f"Redis at {url} is not answering ({type(exc).__name__}); nothing was written. "
            "Try again once it is back (GET /healthz says when).",
            {"Retry-After": "5"},
        )

    api.add_exception_handler(FlowqueueError, on_flowqueue_error)
    api.add_exception_handler(RedisConnectionError, on_redis_error)
    api.add_exception_handler(RedisTimeoutError, on_redis_error)
    api.add_exception_handler(RequestValidationError, on_validation_error)
    api.add_exception_handler(StarletteHTTPException, on_http_error)
