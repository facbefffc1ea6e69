"""Bearer-token auth, on when ``FLOWQUEUE_API_TOKEN`` is set.

Every route but ``/healthz``, login/logout, trigger resume (authorised by its
unguessable, single-use id) and ``POST /api/_webhooks/{name}`` (authorised by the
webhook's signature: ``api/routes_webhooks.py``) requires ``Authorization: Bearer
<token>``: each router declares ``require_token``, and the public ones say why they have
none. Browsers (the dashboard, ``EventSource``, the docs) send the session cookie
``POST /api/_login`` sets instead, accepted wherever the token is (a POST also needs
``X-Requested-With: flowqueue``): a timestamped signature (itsdangerous), never the token
itself, keyed by a secret every API process derives from the same settings.

Login attempts are rate-limited per client IP (the ``limits`` library), counted in Redis
(a moving window, one atomic Lua call per attempt, on the API process's own connection
pool) so every API process shares them. Every attempt counts, right or wrong: it is
counted atomically before the token is looked at, so concurrent guesses cannot slip past
the limit, and a browser logs in rarely (once per session).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response
from itsdangerous import BadData, URLSafeTimedSerializer
from limits import RateLimitItem, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from flowqueue.api.context import context_of
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
COOKIE_FLAGS: dict[str, Any] = {"path": "/", "httponly": True, "samesite": "strict"}
SAFE_METHODS = frozenset({"GET", "HEAD"})
CSRF_HEADER, CSRF_VALUE = "X-Requested-With", "flowqueue"  # the dashboard sends it on POST

log = logging.getLogger("flowqueue.api")


@dataclass(frozen=True)
class Auth:
    """What one API process checks requests against (``None`` token: auth is off)."""

    token: bytes | None
    ttl_seconds: int
    sessions: URLSafeTimedSerializer | None
    login_limiter: LoginLimiter

    @classmethod
    def from_settings(cls, settings: Settings) -> Auth:
        """``ConfigurationError`` for a guessable token (``check_auth_settings``)."""
        check_auth_settings(settings)
        ttl, limiter = settings.session_ttl_seconds, LoginLimiter(settings)
        if settings.api_token is None:
            return cls(None, ttl, None, limiter)
        token = settings.api_token.get_secret_value()
        secret = settings.session_secret
        key = session_key(token, None if secret is None else secret.get_secret_value())
        serializer = URLSafeTimedSerializer(key, salt="flowqueue.session")
        return cls(token.encode(), ttl, serializer, limiter)

    def bearer_ok(self, authorization: str) -> bool:
        scheme, _, given = authorization.partition(" ")
        return self.token is None or (scheme.lower() == "bearer" and self.token_ok(given.strip()))

    def token_ok(self, given: str) -> bool:
        return self.token is None or secrets.compare_digest(given.encode(), self.token)

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
        # Not loads(max_age=...): it also refuses a cookie signed a second "in the future"
        # by a process whose clock is slightly ahead.
        age: float = (time.time() if now is None else now) - signed_at.timestamp()
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


class LoginLimiter:
    """The rate limit of ``POST /api/_login`` (``FLOWQUEUE_API_LOGIN_RATE_LIMIT``)."""

    def __init__(self, settings: Settings) -> None:
        try:
            self.items: list[RateLimitItem] = parse_many(settings.api_login_rate_limit)
        except ValueError:
            raise ConfigurationError(
                f"FLOWQUEUE_API_LOGIN_RATE_LIMIT={settings.api_login_rate_limit!r} is not a "
                "rate; write e.g. '10/minute' or '10/minute;100/hour'."
            ) from None
        self._limiter: MovingWindowRateLimiter | None = None

    async def hit(self, request: Request) -> None:
        """Count one attempt from the request's client; 429 when over the limit."""
        if self._limiter is None:  # the Redis pool exists only once the app's lifespan runs
            ctx = context_of(request)
            storage = RedisStorage(
                "async+redis://",  # unused: the connection pool below is
                implementation="redispy",
                # documented, but typed as **options: float | str | bool
                connection_pool=ctx.redis.connection_pool,  # type: ignore[arg-type]
                key_prefix=ctx.fq.keys.login_limit,
            )
            self._limiter = MovingWindowRateLimiter(storage)
        client = request.client.host if request.client else "unknown"
        waits = []
        try:
            for item in self.items:
                if not await self._limiter.hit(item, "login", client):
                    stats = await self._limiter.get_window_stats(item, "login", client)
                    waits.append(stats.reset_time - time.time())
        except RedisError:
            raise ApiError(
                503, "the login rate limit cannot reach Redis; try again when it is back."
            ) from None
        if waits:
            retry = max(1, math.ceil(max(waits)))
            raise ApiError(
                429,
                f"too many login attempts from {client}; try again in {retry} s.",
                {"Retry-After": str(retry)},
            )


def auth_of(request: Request) -> Auth:
    auth = request.app.state.auth
    assert isinstance(auth, Auth)
    return auth


def token_matches(request: Request, *, cookie: bool = False) -> bool:
    auth = auth_of(request)
    if auth.bearer_ok(request.headers.get("authorization", "")):
        return True
    return cookie and auth.session_ok(request.cookies.get(COOKIE, ""))


# uvicorn takes the scheme from X-Forwarded-Proto only from trusted proxies
# (--forwarded-allow-ips), so a client cannot talk its way into or out of `secure`.
def set_session_cookie(request: Request, response: Response) -> None:
    auth = auth_of(request)
    secure = request.url.scheme == "https"
    ttl = auth.ttl_seconds
    response.set_cookie(
        COOKIE, auth.new_session(), max_age=ttl, expires=ttl, secure=secure, **COOKIE_FLAGS
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, secure=request.url.scheme == "https", **COOKIE_FLAGS)


async def require_token(request: Request) -> None:
    """The token, or the dashboard's session cookie: on any read, and on a change (POST)
    only with ``X-Requested-With: flowqueue``, a header no other site's form or link can
    send (the cookie is SameSite=Strict too: two locks against forged requests)."""
    cookie = request.method in SAFE_METHODS or request.headers.get(CSRF_HEADER) == CSRF_VALUE
    if not token_matches(request, cookie=cookie):
        raise ApiError(
            401,
            "send 'Authorization: Bearer <FLOWQUEUE_API_TOKEN>', or log in with "
            "POST /api/_login so the browser sends the session cookie (it expires after "
            "FLOWQUEUE_SESSION_TTL_SECONDS; a POST with it also sends "
            f"'{CSRF_HEADER}: {CSRF_VALUE}').",
            CHALLENGE,
        )
