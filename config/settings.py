"""The one settings object: built once at the edge (the CLI) and passed down.

Nothing else in employee-sync reads the environment.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.logging import mask_url_credentials
from config.redis_target import RedisTarget, redis_target

LOOPBACK_NAMES = frozenset({"localhost"})

PositiveFloat = Annotated[float, Field(gt=0)]


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", "redis+sentinel"})
MONGODB_SCHEMES = frozenset({"mongodb", "mongodb+srv"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingMissingError(ValueError):
    """A setting this command needs is not set (the CLI prints `configuration error: ...`, exit 2)."""


def _check_scheme(name: str, value: str, schemes: frozenset[str]) -> None:
    """Refuse what the drivers would refuse later with a traceback; the message never shows a password."""
    if urlsplit(value).scheme not in schemes:
        choices = ", ".join(f"{s}://" for s in sorted(schemes))
        raise ValueError(f"{name} must start with one of {choices}; got {mask_url_credentials(value)!r}")


class Settings(BaseSettings):
    """Every tunable of employee-sync, read from the environment (and `.env`) once."""

    # hide_input_in_errors: a refused value (a URL with its password, a key) never shows in the error.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    # Upstream API
    coresignal_api_key: SecretStr = SecretStr("")
    coresignal_base_url: str = "https://api.coresignal.com/cdapi"
    request_timeout_s: PositiveFloat = 8.0

    # Services
    redis_url: str = "redis://127.0.0.1:6379/0"  # or redis+sentinel://host:port,.../MASTER/DB
    # Find the Redis primary through Sentinel: "host:port,host:port" (REDIS_URL then gives the
    # database and password only). See config/redis_target.py.
    redis_sentinels: str = ""
    redis_sentinel_master: str = "mymaster"
    mongodb_url: str = "mongodb://127.0.0.1:27017"
    mongodb_database: str = "employee_sync"

    # Rate budget per API key and endpoint class, in requests per second
    collect_rps: PositiveFloat = 54.0
    search_rps: PositiveFloat = 18.0
    bulk_rps: PositiveFloat = 27.0
    # Fraction of each budget held back so network jitter cannot push a sliding second over the limit:
    # "adaptive" follows the jitter the fleet measures, within [floor, ceiling], starting at
    # LIMITER_MARGIN_START until the first measurement; "fixed" always holds back RATE_SAFETY_MARGIN (README,
    # "The margin is the arrival jitter we can absorb", says what each costs).
    limiter_margin_mode: Literal["adaptive", "fixed"] = "fixed"
    rate_safety_margin: float = Field(default=0.03, ge=0.0, lt=0.5)
    limiter_margin_floor: float = Field(default=0.0075, ge=0.0, lt=0.5)
    limiter_margin_ceiling: float = Field(default=0.10, ge=0.0, lt=0.5)
    limiter_margin_start: float = Field(default=0.05, ge=0.0, lt=0.5)
    # How fast the adaptive margin may narrow (fraction per second); it widens at once.
    limiter_margin_narrow_per_s: PositiveFloat = 0.002
    # How far ahead a worker may book a slot; beyond this it waits and asks again.
    limiter_max_ahead_s: PositiveFloat = 2.0
    # Cool-down applied fleet-wide after a 429 that carries no Retry-After.
    default_retry_after_s: PositiveFloat = 1.0
    # Longest fleet cool-down a single 429 can impose, whatever its Retry-After says.
    retry_after_cap_s: PositiveFloat = 120.0

    # Workers and retries
    worker_concurrency: int = Field(default=20, ge=1, le=1000)
    # Longest one job may run: a slot wait of at most 30 % of this, one request of at most
    # REQUEST_TIMEOUT_S, one write.
    job_timeout_s: PositiveFloat = 18.0
    # A running job holds a lease of this long, renewed by its worker every third of it: a killed
    # worker's jobs run again on another worker within this (plus a poll) whatever JOB_TIMEOUT_S is.
    # Shorter recovers sooner; it must outlast the longest pause of a busy worker's event loop.
    job_lease_s: float = Field(default=3.0, ge=0.5, le=60)
    max_tries: int = Field(default=6, ge=1, le=50)
    # A job whose worker died while running it this many times is dead-lettered (a poison payload).
    max_worker_deaths: int = Field(default=3, ge=1, le=100)
    retry_base_s: PositiveFloat = 0.5
    retry_cap_s: PositiveFloat = 60.0
    drain_timeout_s: int = Field(default=30, ge=0)
    # Accepted inputs are stored with their run in chunks of this many items.
    input_chunk_size: int = Field(default=5000, ge=1, le=100_000)

    # Search runs
    search_items_per_page: int = Field(default=1000, ge=1, le=1000)
    # A profile synced more recently than this is not collected again by a search run: credits are money.
    freshness_ttl_s: float = Field(default=7 * 24 * 3600, ge=0)
    # The search chain waits while the queue holds more jobs than this (bounded Redis, no runaway run).
    search_max_queued: int = Field(default=20_000, ge=1)

    # The queue holds at most this many collect jobs; a feeder tops it up from the runs' stored
    # inputs, fair across runs, so Redis stays small whatever the size of a run.
    queue_window: int = Field(default=500, ge=10, le=100_000)
    # A running run with no job in the queue and no progress (or whose live counters Redis lost)
    # for this long is rebuilt from MongoDB by the reconciler, with no one typing `resume`.
    reconcile_after_s: PositiveFloat = 6.0

    # Bulk collect (data requests, spec §8): see README "Bulk runs and the planner"
    # Ids per data request (the API refuses more than 10,000).
    bulk_request_ids: int = Field(default=10_000, ge=1, le=10_000)
    # Polling a data request's files: capped, jittered exponential backoff from the first delay.
    bulk_poll_first_s: PositiveFloat = 2.0
    bulk_poll_cap_s: PositiveFloat = 60.0
    # A data request whose files are not listed this long after its POST fails with this reason.
    bulk_ready_deadline_s: PositiveFloat = 6 * 3600.0
    # Profiles written to MongoDB per bulk_write while ingesting a file (one checkpoint each).
    bulk_ingest_batch: int = Field(default=500, ge=1, le=10_000)
    # A file that does not decode is downloaded again at most this many times in all.
    bulk_file_max_downloads: int = Field(default=3, ge=1, le=20)
    # Ids requested but not delivered: counted `not_found` (False) or collected one by one (True).
    bulk_missing_via_collect: bool = False
    # Planner: choose bulk when at least this many items are left after skipping fresh ones.
    bulk_min_items: int = Field(default=3_000, ge=1)
    # Planner's time model for a data request (GUESS: the real API's turnaround is not published).
    bulk_expected_ready_s: float = Field(default=60.0, ge=0)
    bulk_expected_per_record_s: float = Field(default=0.0005, ge=0)
    # Syncs (jobs.scheduler): one worker of the fleet plans due syncs under a Redis lease.
    sync_scheduler: bool = True  # False: this worker never plans (it still collects)
    sync_tick_s: PositiveFloat = 1.0  # how often the lease holder looks for due syncs
    sync_lease_ttl_s: PositiveFloat = 5.0  # a dead holder's lease lapses after this; renewed at a third
    # A delta re-reads this far behind its watermark (last_updated is the API's clock, dates only).
    sync_delta_lag_s: float = Field(default=86_400, ge=0)
    sync_credits_per_day: int | None = Field(default=None, ge=1)  # the fleet-wide ceiling for all syncs
    sync_budget_period_s: PositiveFloat = 86_400.0  # a "day" of the budgets (benchmarks scale time)

    # HTTP API
    api_tokens: SecretStr = SecretStr("")  # comma-separated bearer tokens
    api_max_items: int = Field(default=100_000, ge=1)  # items in one POST /v1/runs
    api_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

    # Webhooks (spec §9): the base URL Coresignal calls, e.g. https://sync.example.com; the receiver
    # path /v1/webhooks/coresignal/<token> is appended. https unless loopback (the local simulator).
    webhook_public_base_url: str | None = None
    webhook_max_body_bytes: int = Field(default=1024 * 1024, ge=64)  # a larger body is a 413
    webhook_max_notices: int = Field(default=10_000, ge=1)  # notices in one body (more: 413)
    # A noticed profile synced after the notice arrived, or this long before it, is not collected
    # again (its copy already holds the news; no credit spent twice).
    webhook_fresh_window_s: float = Field(default=60.0, ge=0)
    # Upstream sends weekly batches; a subscription silent for cadence + slack is alerted on.
    webhook_cadence_days: float = Field(default=7.0, gt=0)
    webhook_silence_slack_days: float = Field(default=2.0, ge=0)
    # Renew a subscription this long before it expires (recreate past the one-year limit).
    subscription_renew_before_days: float = Field(default=14.0, gt=0)
    subscription_max_lifetime_days: float = Field(default=365.0, gt=0)
    # A `--webhooks` sync's subscriptions: this many ids at most in one `ids` subscription (spec
    # §9.1 cites 300,000 per subscription, low confidence), and the notice type they ask for.
    sync_subscription_max_ids: int = Field(default=300_000, ge=1)
    sync_subscription_type: Literal["experience", "profile"] = "experience"

    # Change feed: events are served once this long after their sequence number was allocated, so
    # a page never passes a number whose event is still being written (see worker.store.changes).
    changes_settle_s: float = Field(default=2.0, ge=0.0, le=60.0)
    changes_retention_days: float = Field(default=365.0, gt=0)

    # Prometheus metrics port of a worker process (None: not exposed); one port per process on a host
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Address the worker's metrics listen on: loopback by default; 0.0.0.0 for a remote Prometheus
    metrics_host: str = "127.0.0.1"

    # Logging
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON when stderr is not a TTY

    @model_validator(mode="after")
    def _margin_bounds_in_order(self) -> Settings:
        if self.limiter_margin_floor > self.limiter_margin_ceiling:
            raise ValueError("LIMITER_MARGIN_FLOOR must not exceed LIMITER_MARGIN_CEILING")
        if not self.limiter_margin_floor <= self.limiter_margin_start <= self.limiter_margin_ceiling:
            raise ValueError(
                "LIMITER_MARGIN_START must lie between LIMITER_MARGIN_FLOOR and LIMITER_MARGIN_CEILING"
            )
        return self

    @field_validator("coresignal_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        parts, shown = urlsplit(value), mask_url_credentials(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"CORESIGNAL_BASE_URL must be an http(s) URL, got {shown!r}")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError(
                "CORESIGNAL_BASE_URL must use https:// (the real API is HTTPS-only); "
                "plain http:// is allowed only for a loopback host such as the local simulator"
            )
        # Without /cdapi every call is a route 404 (spec §1): refuse it here, not one job at a time.
        if not parts.path.rstrip("/").endswith("/cdapi"):
            raise ValueError(
                "CORESIGNAL_BASE_URL must end in /cdapi (e.g. https://api.coresignal.com/cdapi), "
                f"got {shown!r}"
            )
        return value.rstrip("/")

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """repr() and str() mask URL passwords (SecretStr fields mask themselves): a Settings in a
        traceback's locals, a debugger or an f-string never shows the Redis or MongoDB password."""
        for name, value in super().__repr_args__():
            yield name, mask_url_credentials(value) if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        _check_scheme("REDIS_URL", value, REDIS_SCHEMES)
        parts, shown = urlsplit(value), mask_url_credentials(value)
        if parts.scheme in ("unix", "redis+sentinel"):
            return value  # a sentinel URL's host list is checked by redis_target (below)
        try:
            parts.port  # noqa: B018 -- parsing it is the check
        except ValueError:
            raise ValueError(f"REDIS_URL has an invalid port: {shown!r}") from None
        if not parts.hostname:
            raise ValueError(f"REDIS_URL names no host: {shown!r}")
        database = parts.path.strip("/")
        if database and not database.isdigit():
            raise ValueError(f"REDIS_URL's path must be a database number, got {database!r}")
        return value

    @field_validator("mongodb_url")
    @classmethod
    def _check_mongodb_url(cls, value: str) -> str:
        # Only the scheme and a host: the rest (host lists, options) is pymongo's to judge (worker.store).
        _check_scheme("MONGODB_URL", value, MONGODB_SCHEMES)
        if not urlsplit(value).netloc.rpartition("@")[2]:
            raise ValueError(f"MONGODB_URL names no host: {mask_url_credentials(value)!r}")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
        return value.upper()

    @model_validator(mode="after")
    def _redis_target_parses(self) -> Settings:
        self.redis_target()  # a bad REDIS_URL / REDIS_SENTINELS is a configuration error at start-up
        return self

    def redis_target(self) -> RedisTarget:
        return redis_target(self.redis_url, self.redis_sentinels, self.redis_sentinel_master)

    @field_validator("webhook_public_base_url")
    @classmethod
    def _webhook_https_unless_loopback(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"WEBHOOK_PUBLIC_BASE_URL must be an http(s) URL, got {value!r}")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError(
                "WEBHOOK_PUBLIC_BASE_URL must use https:// (the URL carries the capability token); "
                "plain http:// is allowed only for a loopback host"
            )
        return value.rstrip("/")

    def rate_per_s(self, endpoint_class: str) -> float:
        rates = {"collect": self.collect_rps, "search": self.search_rps, "bulk": self.bulk_rps}
        return rates[endpoint_class]

    def secrets(self) -> list[str]:
        """Everything a log line must never show: the API key, bearer tokens, service passwords."""
        passwords = [urlsplit(url).password for url in (self.redis_url, self.mongodb_url)]
        # Both spellings: the URL holds the percent-encoded one, a driver's message may hold the other.
        spelled = [form for p in passwords if p for form in (p, unquote(p))]
        return [self.coresignal_api_key.get_secret_value(), *self.bearer_tokens(), *spelled]

    def bearer_tokens(self) -> list[str]:
        return [t.strip() for t in self.api_tokens.get_secret_value().split(",") if t.strip()]

    def require_api_key(self) -> str:
        key = self.coresignal_api_key.get_secret_value()
        if not key:
            raise SettingMissingError("CORESIGNAL_API_KEY is not set")
        return key
