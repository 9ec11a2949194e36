"""The one exception tree. Every error employee-sync raises is an `EmployeeSyncError`.

    EmployeeSyncError
    ├── TransientError                 worth retrying later (with backoff, through the limiter)
    │   ├── RateLimitedError           upstream 429; carries retry_after_s
    │   ├── UpstreamUnavailableError   5xx, timeout, connection error, malformed body
    │   ├── UpstreamRouteError         a 404 not from the API (wrong URL, a proxy), or a 3xx (not followed)
    │   ├── StoreUnavailableError      MongoDB not answering
    │   └── RedisUnavailableError      Redis not answering (queue, limiter, counters, credits flag, locks)
    ├── PermanentError                 retrying cannot help; recorded in the dead-letter
    │   ├── AuthError                  401: the API key is wrong
    │   ├── NotFoundError              the API's own 404: no such employee (tombstone, not a failure)
    │   ├── BadRequestError            400/422 and other 4xx: the request itself is wrong
    │   └── OutOfCreditsError          402: the account has no credits left
    ├── InputError                     a producer was handed bad input (line numbers in the message)
    │   ├── RunNotFoundError           no run with that id
    │   └── RunStateError              the run's state does not allow that (e.g. pause a finished run)
    ├── MetricsPortError               a worker's METRICS_PORT cannot be bound (in use: one port per process)
    ├── ConfigError                    a setting a driver refuses (e.g. a MONGODB_URL pymongo cannot parse)
    └── RetryJob                       control flow: run this job again after defer_s

Third-party exceptions (aiohttp, pymongo, redis) are translated into these in the module that owns
that library (`client.py`, `store.py`, `limiter.py`/`queue.py`), so callers never import them.
"""

from __future__ import annotations


class EmployeeSyncError(Exception):
    """Root of every error raised by employee-sync."""


class TransientError(EmployeeSyncError):
    """A failure that may succeed if tried again later."""

    retry_after_s: float | None = None


class RateLimitedError(TransientError):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UpstreamUnavailableError(TransientError):
    """5xx, timeout, connection reset, or a body that is not the JSON we expect."""


class UpstreamRouteError(TransientError):
    """A 404 without the API's not-found answer: a route 404 (base URL missing /cdapi), an HTML page,
    a proxy. Nothing may be tombstoned on it; retried, then dead-lettered (requeue once fixed).
    Also a redirect, which the client never follows (the API key would go wherever it points)."""


class StoreUnavailableError(TransientError):
    """MongoDB did not answer."""


class RedisUnavailableError(TransientError):
    """Redis did not answer."""


class PermanentError(EmployeeSyncError):
    """Retrying the same request cannot succeed."""

    status: int | None = None

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(PermanentError):
    """The API key was refused (401)."""


class NotFoundError(PermanentError):
    """The employee does not exist upstream: the API's own 404 answer (see `worker.client`)."""


class BadRequestError(PermanentError):
    """The upstream API rejected the request as malformed (400, 422, other 4xx)."""


class OutOfCreditsError(PermanentError):
    """The account has no credits left (402)."""


class InputError(EmployeeSyncError):
    """Bad input handed to a producer; the message names the offending line or field."""


class RunNotFoundError(InputError):
    """No run with that id."""


class RunStateError(InputError):
    """The run's current state does not allow the requested change."""


class MetricsPortError(EmployeeSyncError):
    """A worker could not serve its metrics on METRICS_PORT (in use, or not allowed)."""


class ConfigError(EmployeeSyncError):
    """A setting that passed validation but a driver refuses; the message names the setting."""


class RetryJob(EmployeeSyncError):
    """Ask the queue to run the current job again after `defer_s` (retries are jobs, not loops)."""

    def __init__(self, defer_s: float, reason: str) -> None:
        super().__init__(f"retry in {defer_s:.2f}s: {reason}")
        self.defer_s = defer_s
        self.reason = reason
