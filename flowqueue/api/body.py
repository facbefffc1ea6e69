"""JSON request bodies read with a size limit before they are parsed, so a huge or
malformed body is refused (413 / 422) before anything is written."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from pydantic_core import from_json

from flowqueue.api.problems import ApiError

ANY_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": {}}},
        "description": "Any JSON value.",
    }
}


async def json_body(request: Request, limit: int, *, default: Any = None) -> Any:
    """The request's JSON body (``default`` when empty); 413 past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, too_large(int(declared), limit))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, too_large(len(body), limit))
    if not body.strip():
        return default
    try:
        return from_json(bytes(body))
    except ValueError as exc:
        raise ApiError(422, f"the body is not valid JSON: {exc}") from None


def too_large(size: int, limit: int) -> str:
    return (
        f"the body is {size} bytes or more; the limit is {limit} (FLOWQUEUE_MAX_PAYLOAD_BYTES). "
        "Store large data elsewhere and send a reference."
    )
