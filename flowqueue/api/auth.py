"""Bearer-token auth, on when ``FLOWQUEUE_API_TOKEN`` is set.

Every route but ``/healthz`` and trigger resume (authorised by its unguessable,
single-use id) requires ``Authorization: Bearer <token>``. Browsers' ``EventSource``
cannot send headers, so the SSE routes also accept the HttpOnly cookie that
``POST /api/_login`` sets.
"""

from __future__ import annotations

import secrets

from fastapi import Request

from flowqueue.api.context import context_of
from flowqueue.api.problems import ApiError

COOKIE = "flowqueue_token"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="flowqueue"'}


def token_matches(request: Request, *, cookie: bool = False) -> bool:
    token = context_of(request).settings.api_token
    if token is None:
        return True
    expected = token.get_secret_value().encode()
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), expected):
        return True
    if cookie:
        value = request.cookies.get(COOKIE, "")
        return secrets.compare_digest(value.encode(), expected)
    return False


async def require_token(request: Request) -> None:
    if not token_matches(request):
        raise ApiError(401, "send 'Authorization: Bearer <FLOWQUEUE_API_TOKEN>'.", CHALLENGE)


async def require_token_or_cookie(request: Request) -> None:
    if not token_matches(request, cookie=True):
        raise ApiError(
            401,
            "send 'Authorization: Bearer <FLOWQUEUE_API_TOKEN>', or log in with "
            "POST /api/_login so the browser sends the cookie.",
            CHALLENGE,
        )
