"""JSON request bodies read with a size and a time limit before they are parsed, so a
huge, stalled or malformed body is refused (413 / 408 / 422) before anything is written."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import Request
from pydantic_core import from_json

from flowqueue.api.context import context_of
from flowqueue.api.problems import ApiError
from flowqueue.model.validation import INT_MAX, INT_MIN, MAX_JSON_DEPTH

# A JSON value within the limits every way in checks (model/validation.py), so that a
# client generating from the schema stays inside them; the depth limit is in the text.
JSON_VALUE_REF = {"$ref": "#/components/schemas/JsonValue"}
JSON_VALUE_SCHEMA: dict[str, Any] = {
    "description": f"Any JSON value nested at most {MAX_JSON_DEPTH} levels, with integers "
    "within 64 bits (send larger ones as strings) and valid Unicode text.",
    "anyOf": [
        {"type": "object", "additionalProperties": JSON_VALUE_REF},
        {"type": "array", "items": JSON_VALUE_REF},
        {"type": "string"},
        {"type": "boolean"},
        {"type": "null"},
        {"type": "integer", "minimum": INT_MIN, "maximum": INT_MAX},
        {"type": "number", "not": {"type": "integer"}},
    ],
}


def request_body(schema: dict[str, Any], *, required: bool = True, **extra: Any) -> dict[str, Any]:
    """``openapi_extra`` documenting the JSON body a route reads itself with ``json_body``."""
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": required, "content": content, **extra}}


ANY_JSON_BODY = request_body(
    JSON_VALUE_REF, required=False, description="Any JSON value (within the limits of JsonValue)."
)


async def json_body(
    request: Request,
    *,
    default: Any = None,
    limit: int | None = None,
    limit_name: str = "FLOWQUEUE_MAX_PAYLOAD_BYTES",
) -> Any:
    """The request's JSON body (``default`` when empty); 413 past ``limit`` bytes (default
    FLOWQUEUE_MAX_PAYLOAD_BYTES), 408 when it does not arrive within
    FLOWQUEUE_API_BODY_TIMEOUT_SECONDS."""
    return parse_json(await raw_body(request, limit=limit, limit_name=limit_name), default)


async def raw_body(
    request: Request, *, limit: int | None = None, limit_name: str = "FLOWQUEUE_MAX_PAYLOAD_BYTES"
) -> bytes:
    """The request's body bytes, read with ``json_body``'s size and time limits: a declared
    or streamed size past ``limit`` is refused (413) before the rest is read."""
    settings = context_of(request).settings
    limit = settings.max_payload_bytes if limit is None else limit
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, too_large(int(declared), limit, limit_name))
    seconds = settings.api_body_timeout_seconds
    body = bytearray()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise ApiError(413, too_large(len(body), limit, limit_name))
    except TimeoutError:
        # The rest of a stalled body may still come: close rather than parse it as a request.
        raise ApiError(
            408,
            f"the body did not arrive within {seconds:g} s "
            "(FLOWQUEUE_API_BODY_TIMEOUT_SECONDS); send it at once, or raise the limit.",
            {"Connection": "close"},
        ) from None
    return bytes(body)


def parse_json(body: bytes, default: Any = None, *, unique_keys: bool = False) -> Any:
    """``body`` as JSON (``default`` when empty); 422 when it is not JSON or nests too
    deep, and with ``unique_keys`` when an object repeats a key (a signed body must mean
    one thing: parsers differ on which copy wins)."""
    if not body.strip():
        return default
    try:
        value = from_json(body)
        if unique_keys:
            json.loads(body, object_pairs_hook=_unique)
        return value
    except _RepeatedKey as exc:
        raise ApiError(
            422,
            f"the body repeats the key {exc.key!r} in one object; send each key once "
            "(which copy counts differs between JSON parsers).",
        ) from None
    except ValueError as exc:
        if "recursion limit" in str(exc):
            raise ApiError(
                422,
                f"the body nests deeper than the limit of {MAX_JSON_DEPTH} levels; flatten it "
                "or store it elsewhere and send a reference.",
            ) from None
        raise ApiError(422, f"the body is not valid JSON: {exc}") from None


class _RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key[:80]


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _RepeatedKey(key)
        found[key] = value
    return found


def too_large(size: int, limit: int, limit_name: str) -> str:
    return (
        f"the body is {size} bytes or more; the limit is {limit} ({limit_name}). "
        "Store large data elsewhere and send a reference."
    )
