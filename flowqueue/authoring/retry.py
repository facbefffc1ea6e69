"""Retry policies: how often a failed step runs again, and after how long."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from flowqueue.errors import ConfigurationError, NonRetriableError


@dataclass(frozen=True)
class Retry:
    """``attempts`` counts every run of the step, the first included (1 = never retry).

    The n-th retry waits ``delay`` (fixed) or ``delay * 2**(n-1)`` (exponential), at most
    ``max_delay``; with ``jitter`` a random 50-100% of that, so retries of many runs do
    not arrive in lockstep. Only exceptions in ``retry_on`` are retried; a
    ``NonRetriableError`` or an exception with ``retriable = False`` never is.
    """

    attempts: int = 3
    backoff: Literal["exponential", "fixed"] = "exponential"
    delay: float = 1.0
    max_delay: float = 30.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = field(default=(Exception,))

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ConfigurationError(f"Retry(attempts={self.attempts}): use 1 or more.")
        if self.delay < 0 or self.max_delay < 0:
            raise ConfigurationError("Retry delays must be >= 0 seconds.")
        if self.backoff not in ("exponential", "fixed"):
            raise ConfigurationError(
                f"Retry(backoff={self.backoff!r}): use 'exponential' or 'fixed'."
            )

    def should_retry(self, exc: BaseException, attempt: int) -> bool:
        if isinstance(exc, NonRetriableError) or getattr(exc, "retriable", True) is False:
            return False
        return attempt < self.attempts and isinstance(exc, self.retry_on)

    def delay_for(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = self.delay if self.backoff == "fixed" else self.delay * 2 ** (attempt - 1)
        base = min(base, self.max_delay)
        return base * (rng or random).uniform(0.5, 1.0) if self.jitter else base
