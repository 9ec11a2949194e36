"""The one exception tree. Every error employee-sync raises is an `EmployeeSyncError`.

    EmployeeSyncError
    ├── TransientError                 worth retrying later (with backoff, through the limiter)
    │   ├── RateLimitedError           upstream 429; carries retry_after_s
    │   ├── UpstreamUnavailableError   5xx, timeout, connection error, malformed body
    │   │   └── SubmitOutcomeUnknownError  a bulk POST sent but unanswered: it may have been billed
    │   ├── UpstreamRouteError         a 404 not from the API (wrong URL, a proxy), or a 3xx (not followed)
    │   ├── StoreUnavailableError      MongoDB not answering
    │   ├── SubscriptionInitializingError  409 on a subscription just created: try again shortly
    │   ├── RedisUnavailableError      Redis not answering (queue, limiter, counters, credits flag, locks)
    │   └── CorruptFileError           a downloaded bulk file does not decode (truncated or corrupt gzip,
    │                                  bad JSON): download it again, a bounded number of times
    ├── PermanentError                 retrying cannot help; recorded in the dead-letter
    │   ├── AuthError                  401: the API key is wrong
    │   ├── NotFoundError              the API's own 404: no such employee (tombstone, not a failure)
    │   │   ├── NoMatchingIdsError     bulk 404 at submit: no id exists / nothing matches (nothing billed)
    │   │   └── DataRequestNotFoundError  bulk 404 at files or download: unknown request or file, expired
    │   ├── BadRequestError            400/422 and other 4xx: the request itself is wrong
    │   │   ├── DataRequestTooLargeError  bulk 400 "too many ids" at submit, 422 "matched too many" at files
    │   │   └── SubscriptionRenewalError   400 on renew: expired, or the renewal would pass one year
    │   │                                  (the subscription must be created anew)
    │   ├── SubscriptionNotFoundError  404 on a webhook subscription: gone, or another key's
    │   ├── OutOfCreditsError          402: the account has no credits left
    │   ├── DataRequestConflictError   bulk 409: an identical data request is already in progress
    │   ├── StoreRejectedError         MongoDB refused this document (validation, too large, bad key)
    │   └── WorkerDiedError            the job's worker died on it too many times (a poison payload)
    ├── InputError                     a producer was handed bad input (line numbers in the message)
    │   ├── RunNotFoundError           no run with that id
    │   └── RunStateError              the run's state does not allow that (e.g. pause a finished run)
    ├── MetricsPortError               a worker's METRICS_PORT cannot be bound (in use: one port per process)
    ├── ConfigError                    a setting a driver refuses (e.g. a MONGODB_URL pymongo cannot parse)
    └── RetryJob                       control flow: run this job again after defer_s

Third-party exceptions (aiohttp, pymongo, redis) are translated into these in the module that owns
that library (`client.py`, `store/base.py`, `redis_errors.py`), so callers never import them.
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


class StoreRejectedError(PermanentError):
    """MongoDB refused the document itself: retrying the same write cannot succeed."""


class WorkerDiedError(PermanentError):
    """The job killed (or outlived) its worker too many times; it goes to the dead-letter."""


class SubscriptionNotFoundError(PermanentError):
    """No such webhook subscription for this API key (404). Not an employee tombstone."""


class SubscriptionRenewalError(BadRequestError):
    """Renew refused (400): the subscription expired, or would live past its one-year limit."""


class SubscriptionInitializingError(TransientError):
    """The subscription was just created and is still initialising (409): renew again later."""


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


# -- bulk collect (spec §8); raised by the bulk section of `worker.client` and `worker.bulk_files` --


class SubmitOutcomeUnknownError(UpstreamUnavailableError):
    """A bulk POST (a billing event) went out but no usable answer came back: timeout, reset, or a 2xx
    without a request id. It may have created (and billed) a data request, so it must not be resent
    blindly: surface it for reconciliation instead."""


class CorruptFileError(TransientError):
    """A bulk file's bytes do not decode: truncated or corrupt gzip, or a record that is not JSON."""


class DataRequestConflictError(PermanentError):
    """409: an identical data request is already in progress (wait for it rather than resubmit)."""


class DataRequestTooLargeError(BadRequestError):
    """More than 10,000 ids in one data request (400 at submit), or an es_dsl request that matched more
    than 10,000 profiles (422 when its files are listed)."""


class NoMatchingIdsError(NotFoundError):
    """404 at submit: none of the ids exist, or the query matches nothing. Nothing was billed."""


class DataRequestNotFoundError(NotFoundError):
    """404 listing or downloading files: the request or file is unknown, or older than 30 days."""
