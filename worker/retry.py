"""The retry policy, written once: which failures are retried, and after how long."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from worker.errors import (
    PermanentError,
    RedisUnavailableError,
    RetryJob,
    StoreUnavailableError,
    TransientError,
)
from worker.limiter import LimiterBusyError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter; Retry-After, when given, is a floor.

    Only `TransientError`s are retried (timeouts, connection errors, 5xx, 429, store/queue outages).
    4xx other than 429 are `PermanentError`s and are never retried blindly. Every retry is a new job
    run, so it draws a fresh slot from the global rate limiter like any first try.
    """

    max_tries: int = 6
    base_s: float = 0.5
    cap_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        ceiling = min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1))
        delay = self.rng.uniform(0.0, ceiling)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return delay

    def busy_delay_s(self, wait_s: float) -> float:
        """The limiter's wait plus jitter that grows with it, so a long cool-down's jobs do not all
        come back in the same instant (each would only be refused again)."""
        wait_s = max(0.0, wait_s)
        return wait_s + self.rng.uniform(0.0, max(self.base_s, 0.1 * wait_s))

    def next_step(self, error: Exception, attempt: int) -> RetryJob | None:
        """A RetryJob to raise, or None when the failure is final (permanent, or tries used up).

        Our own stores being away (MongoDB, Redis) is not the item's fault: those failures are
        retried until the stores come back (backoff capped at `cap_s`), never dead-lettered. Nor is
        our own limiter's back-pressure (`LimiterBusyError`: a long 429 cool-down, or more jobs
        in flight than the horizon holds): it is deferred by the wait the limiter reported.
        """
        if isinstance(error, PermanentError) or not isinstance(error, TransientError):
            return None
        if isinstance(error, LimiterBusyError):
            return RetryJob(self.busy_delay_s(error.retry_after_s), reason=str(error))
        if isinstance(error, StoreUnavailableError | RedisUnavailableError):
            return RetryJob(self.delay_s(min(attempt, 16)), reason=str(error))
        if attempt >= self.max_tries:
            return None
        return RetryJob(self.delay_s(attempt, error.retry_after_s), reason=str(error))
