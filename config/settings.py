"""The one settings object: built once at the edge (the CLI) and passed down.

Nothing else in employee-sync reads the environment.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


class Settings(BaseSettings):
    """Every tunable of employee-sync, read from the environment (and `.env`) once."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Upstream API
    coresignal_api_key: SecretStr = SecretStr("")
    coresignal_base_url: str = "https://api.coresignal.com/cdapi"
    request_timeout_s: PositiveFloat = 8.0

    # Services
    redis_url: str = "redis://127.0.0.1:6379/0"
    mongodb_url: str = "mongodb://127.0.0.1:27017"
    mongodb_database: str = "employee_sync"

    # Rate budget per API key and endpoint class, in requests per second
    collect_rps: PositiveFloat = 54.0
    search_rps: PositiveFloat = 18.0
    bulk_rps: PositiveFloat = 27.0
    # Fraction of each budget held back so network jitter cannot push a sliding second over the limit.
    rate_safety_margin: float = Field(default=0.03, ge=0.0, lt=0.5)
    # How far ahead a worker may book a slot; beyond this it waits and asks again.
    limiter_max_ahead_s: PositiveFloat = 2.0
    # Cool-down applied fleet-wide after a 429 that carries no Retry-After.
    default_retry_after_s: PositiveFloat = 1.0

    # Workers and retries
    worker_concurrency: int = Field(default=20, ge=1, le=1000)
    # A killed worker's jobs run again on another worker after JOB_TIMEOUT_S + 10 s (arq's
    # in-progress expiry): 18 s keeps that recovery under 30 s while a job (a slot wait of at most
    # 30 % of this, one request of at most REQUEST_TIMEOUT_S, one write) still fits.
    job_timeout_s: PositiveFloat = 18.0
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

    # HTTP API
    api_tokens: SecretStr = SecretStr("")  # comma-separated bearer tokens
    api_max_items: int = Field(default=100_000, ge=1)  # items in one POST /v1/runs
    api_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

    # Prometheus metrics port of a worker process (None: not exposed); one port per process on a host
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # Address the worker's metrics listen on: loopback by default; 0.0.0.0 for a remote Prometheus
    metrics_host: str = "127.0.0.1"

    # Logging
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON when stderr is not a TTY

    @field_validator("coresignal_base_url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"CORESIGNAL_BASE_URL must be an http(s) URL, got {value!r}")
        if parts.scheme == "http" and not is_loopback_host(parts.hostname):
            raise ValueError(
                "CORESIGNAL_BASE_URL must use https:// (the real API is HTTPS-only); "
                "plain http:// is allowed only for a loopback host such as the local simulator"
            )
        return value.rstrip("/")

    def rate_per_s(self, endpoint_class: str) -> float:
        rates = {"collect": self.collect_rps, "search": self.search_rps, "bulk": self.bulk_rps}
        return rates[endpoint_class]

    def secrets(self) -> list[str]:
        """Everything a log line must never show: the API key, bearer tokens, service passwords."""
        passwords = [urlsplit(url).password for url in (self.redis_url, self.mongodb_url)]
        return [self.coresignal_api_key.get_secret_value(), *self.bearer_tokens(), *filter(None, passwords)]

    def bearer_tokens(self) -> list[str]:
        return [t.strip() for t in self.api_tokens.get_secret_value().split(",") if t.strip()]

    def require_api_key(self) -> str:
        key = self.coresignal_api_key.get_secret_value()
        if not key:
            raise ValueError("CORESIGNAL_API_KEY is not set")
        return key
