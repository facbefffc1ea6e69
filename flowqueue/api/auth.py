"""Bearer-token auth, on when ``FLOWQUEUE_API_TOKEN`` is set.

Every route but ``/healthz``, login/logout and trigger resume (authorised by its
unguessable, single-use id) requires ``Authorization: Bearer <token>``. Browsers'
``EventSource`` cannot send headers, so the SSE routes (and the docs) also accept the
session cookie ``POST /api/_login`` sets: a timestamped signature (itsdangerous), never
the token itself, keyed by a secret every API process derives from the same settings.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from itsdangerous import BadData, URLSafeTimedSerializer

from flowqueue.api.login_limit import LoginLimiter
from flowqueue.api.problems import ApiError
from flowqueue.errors import ConfigurationError
from flowqueue.settings import Settings

COOKIE = "flowqueue_session"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="flowqueue"'}
MIN_TOKEN_CHARS = 32
MAKE_TOKEN = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
# Sessions are stateless, so API processes on different hosts check each other's
# cookies; tolerate their clocks disagreeing this much (a cookie "from the future").
CLOCK_SKEW_SECONDS = 60
_KEY_CONTEXT = b"flowqueue-session-v1"

log = logging.getLogger("flowqueue.api")


@dataclass(frozen=True)
class Auth:
    """What one API process checks requests against (``None`` token: auth is off)."""

    token: bytes | None
    ttl_seconds: int
    sessions: URLSafeTimedSerializer | None

    @classmethod
    def from_settings(cls, settings: Settings) -> Auth:
        if settings.api_token is None:
            return cls(None, settings.session_ttl_seconds, None)
        token = settings.api_token.get_secret_value()
        secret = settings.session_secret
        key = session_key(token, None if secret is None else secret.get_secret_value())
        serializer = URLSafeTimedSerializer(key, salt="flowqueue.session")
        return cls(token.encode(), settings.session_ttl_seconds, serializer)

    def bearer_ok(self, authorization: str) -> bool:
        if self.token is None:
            return True
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and self.token_ok(given.strip())

    def token_ok(self, given: str) -> bool:
        if self.token is None:
            return True
        return secrets.compare_digest(given.encode(), self.token)

    def new_session(self) -> str:
        assert self.sessions is not None
        return self.sessions.dumps({"sid": secrets.token_urlsafe(12)})

    def session_ok(self, value: str, now: float | None = None) -> bool:
        if self.sessions is None:
            return True
        try:
            _, signed_at = self.sessions.loads(value, return_timestamp=True)
        except BadData:  # bad signature, garbage, or another key (a rotated token or secret)
            return False
        # The signed timestamp is checked here rather than with loads(max_age=...), which
        # also refuses a cookie signed a second "in the future" by a process whose clock
        # is slightly ahead.
        signed = float(signed_at.timestamp())
        age = (time.time() if now is None else now) - signed
        return -CLOCK_SKEW_SECONDS <= age <= self.ttl_seconds


def session_key(token: str, secret: str | None) -> bytes:
    """The cookie-signing key: from the token alone by default, so every API process with
    the same token agrees and rotating it logs every browser out; an explicit secret is
    mixed with the token, so rotating either does."""
    if secret is None:
        return hmac.new(token.encode(), _KEY_CONTEXT, hashlib.sha256).digest()
    message = _KEY_CONTEXT + b"\0" + token.encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def check_auth_settings(settings: Settings) -> None:
    """Refuse a guessable token at start, and say loudly when auth is off."""
    if settings.api_token is None:
        log.warning(
            "FLOWQUEUE_API_TOKEN is not set (or empty): authentication is OFF and every API "
            "route is open to anyone who can reach this port. Set FLOWQUEUE_API_TOKEN "
            "to a random string of %d+ characters: %s",
            MIN_TOKEN_CHARS,
            MAKE_TOKEN,
        )
        return
    for name, value in (
        ("FLOWQUEUE_API_TOKEN", settings.api_token),
        ("FLOWQUEUE_SESSION_SECRET", settings.session_secret),
    ):
        if value is None:
            continue
        text = value.get_secret_value()
        if text != text.strip():
            raise ConfigurationError(
                f"{name} starts or ends with whitespace, which a bearer header cannot carry; "
                "remove it."
            )
        if len(text) >= MIN_TOKEN_CHARS:
            continue
        if not settings.api_allow_short_token:
            raise ConfigurationError(
                f"{name} is {len(text)} characters long; use at least {MIN_TOKEN_CHARS} random "
                f"ones ({MAKE_TOKEN}), or set FLOWQUEUE_API_ALLOW_SHORT_TOKEN=true to accept "
                "a guessable one."
            )
        log.warning(
            "%s has only %d characters (allowed by FLOWQUEUE_API_ALLOW_SHORT_TOKEN): it can "
            "be guessed; use %d+ random characters.",
            name,
            len(text),
            MIN_TOKEN_CHARS,
        )


def install_auth(api: FastAPI, settings: Settings) -> None:
    """Check the auth settings (``ConfigurationError`` at start) and keep what the
    routes check against on the app."""
    check_auth_settings(settings)
    api.state.auth = Auth.from_settings(settings)
    api.state.login_limiter = LoginLimiter(settings)


def auth_of(request: Request) -> Auth:
    auth = request.app.state.auth
    assert isinstance(auth, Auth)
    return auth


def login_limiter_of(request: Request) -> LoginLimiter:
    limiter = request.app.state.login_limiter
    assert isinstance(limiter, LoginLimiter)
    return limiter


def token_matches(request: Request, *, cookie: bool = False) -> bool:
    auth = auth_of(request)
    if auth.bearer_ok(request.headers.get("authorization", "")):
        return True
    return cookie and auth.session_ok(request.cookies.get(COOKIE, ""))


def set_session_cookie(request: Request, response: Response) -> None:
    auth = auth_of(request)
    response.set_cookie(
        COOKIE,
        auth.new_session(),
        max_age=auth.ttl_seconds,
        expires=auth.ttl_seconds,
        path="/",
        secure=_https(request),
        httponly=True,
        samesite="strict",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path="/", secure=_https(request), httponly=True, samesite="strict"
    )


def _https(request: Request) -> bool:
    # uvicorn takes the scheme from X-Forwarded-Proto only from trusted proxies
    # (--forwarded-allow-ips), so a client cannot talk its way into or out of this.
    return request.url.scheme == "https"


async def require_token(request: Request) -> None:
    if not token_matches(request):
        raise ApiError(401, "send 'Authorization: Bearer <FLOWQUEUE_API_TOKEN>'.", CHALLENGE)


async def require_token_or_cookie(request: Request) -> None:
    if not token_matches(request, cookie=True):
        raise ApiError(
            401,
            "send 'Authorization: Bearer <FLOWQUEUE_API_TOKEN>', or log in with "
            "POST /api/_login so the browser sends the session cookie (it expires after "
            "FLOWQUEUE_SESSION_TTL_SECONDS).",
            CHALLENGE,
        )
