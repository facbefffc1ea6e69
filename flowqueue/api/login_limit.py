"""Rate limit of ``POST /api/_login`` per client IP (the ``limits`` library).

The counts live in Redis (a moving window, one atomic Lua call per attempt, on the API
process's own async connection pool), so every API process shares them; with the
in-memory store they are per process. Every attempt counts, right or wrong: a counted
attempt is decided atomically before the token is looked at, so concurrent guesses
cannot slip past the limit, and a browser logs in rarely (once per session).
"""

from __future__ import annotations

import math
import time

from fastapi import Request
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError

from flowqueue.api.context import context_of
from flowqueue.api.problems import ApiError
from flowqueue.backend.redis.keys import Keys
from flowqueue.errors import ConfigurationError
from flowqueue.settings import Settings


class LoginLimiter:
    def __init__(self, settings: Settings) -> None:
        try:
            self.items: list[RateLimitItem] = parse_many(settings.api_login_rate_limit)
        except ValueError:
            raise ConfigurationError(
                f"FLOWQUEUE_API_LOGIN_RATE_LIMIT={settings.api_login_rate_limit!r} is not a "
                "rate; write e.g. '10/minute' or '10/minute;100/hour'."
            ) from None
        self.prefix = Keys(settings.key_prefix).login_limit
        self._limiter: MovingWindowRateLimiter | None = None

    def _open(self, request: Request) -> MovingWindowRateLimiter:
        # Opened on first use: the Redis pool exists only once the app's lifespan runs.
        if self._limiter is None:
            ctx = context_of(request)
            storage: Storage
            if ctx.redis is None:
                storage = MemoryStorage()
            else:
                storage = RedisStorage(
                    "async+redis://",  # unused: the connection pool below is
                    implementation="redispy",
                    # documented, but typed as **options: float | str | bool
                    connection_pool=ctx.redis.connection_pool,  # type: ignore[arg-type]
                    key_prefix=self.prefix,
                )
            self._limiter = MovingWindowRateLimiter(storage)
        return self._limiter

    async def hit(self, request: Request) -> None:
        """Count one attempt from the request's client; 429 when over the limit."""
        limiter = self._open(request)
        client = request.client.host if request.client else "unknown"
        waits = []
        try:
            for item in self.items:
                if not await limiter.hit(item, "login", client):
                    stats = await limiter.get_window_stats(item, "login", client)
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
