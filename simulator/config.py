"""Settings of the Coresignal simulator.

Defaults follow the API spec (`coresignal-clean-employee-api.md` §7): per-key, per-endpoint
limits of 54 (collect), 18 (search) and 27 (bulk) requests per second, 1 credit per call. Every
choice the spec marks as unconfirmed is a field here so tests can flip it.

The model is mutable on purpose: the app reads it on every request, so `PATCH /_sim/config`
(or a test holding the object) changes behaviour live.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from simulator.mutations import ChangeKind

DEFAULT_API_KEY = "simulator-key-0000000000000000000"

DEFAULT_KIND_WEIGHTS: dict[ChangeKind, float] = {
    "role_started": 4.0,
    "role_ended": 1.5,
    "role_changed": 1.5,
    "other": 3.0,
}

# Fields that change what a profile looks like; changing one rebuilds the population.
POPULATION_FIELDS = frozenset({"seed", "population", "url_field_naming", "last_updated_format"})


class SimulatorConfig(BaseModel):
    model_config = ConfigDict(validate_assignment=True, extra="forbid")

    seed: int = 42
    population: int = Field(default=20_000, ge=0)
    api_keys: list[str] = Field(default_factory=lambda: [DEFAULT_API_KEY])

    collect_rps: int = Field(default=54, ge=1)
    search_rps: int = Field(default=18, ge=1)
    bulk_rps: int = Field(default=27, ge=1)
    retry_after_s: float | None = Field(default=None, ge=0)

    credits: int | None = Field(default=None, ge=0)
    collect_cost: int = Field(default=1, ge=0)
    search_cost: int = Field(default=1, ge=0)

    # The network between client and API: each request is delayed by a random 0..J ms *before* the
    # rate window counts it, so slots a client spaced evenly arrive unevenly (and sometimes reordered).
    arrival_jitter_ms: float = Field(default=0, ge=0)
    latency_ms_min: float = Field(default=0, ge=0)
    latency_ms_max: float = Field(default=0, ge=0)
    error_rate_5xx: float = Field(default=0, ge=0, le=1)
    slow_rate: float = Field(default=0, ge=0, le=1)
    slow_s: float = Field(default=30, ge=0)
    malformed_rate: float = Field(default=0, ge=0, le=1)
    reset_rate: float = Field(default=0, ge=0, le=1)

    url_field_naming: Literal["real", "docs"] = "real"
    last_updated_format: Literal["date", "datetime"] = "datetime"

    # -- bulk collect (`simulator.bulk`, spec §8) ------------------------------------------
    # A data request is ready `bulk_base_delay_s + records * bulk_per_record_s` after its POST
    # (GUESS: the real API takes minutes; defaults keep a local demo quick).
    bulk_base_delay_s: float = Field(default=2.0, ge=0)
    bulk_per_record_s: float = Field(default=0.0005, ge=0)
    bulk_file_records: int = Field(default=10_000, ge=1)
    bulk_expiry_days: float = Field(default=30, gt=0)
    # GUESS (§10.2): JSONL inside the .json.gz; "json_array" for the other possible layout.
    bulk_file_layout: Literal["jsonl", "json_array"] = "jsonl"
    # Also send `Content-Encoding: gzip` on downloads (a client must not let it decompress).
    bulk_content_encoding_gzip: bool = False
    bulk_truncated_rate: float = Field(default=0, ge=0, le=1)
    bulk_corrupt_rate: float = Field(default=0, ge=0, le=1)
    bulk_reset_rate: float = Field(default=0, ge=0, le=1)
    bulk_download_5xx_rate: float = Field(default=0, ge=0, le=1)
    bulk_slow_rate: float = Field(default=0, ge=0, le=1)
    bulk_slow_chunk_s: float = Field(default=0.5, ge=0)
    # -- the changing world and webhook subscriptions (spec §9; simulator.world, .subscriptions)
    # Share of the population changing per simulated week, spread evenly over its days.
    world_change_share_per_week: float = Field(default=0.05, ge=0, le=1)
    # Relative weights of the change kinds the world draws (simulator.mutations).
    world_kind_weights: dict[ChangeKind, float] = Field(default_factory=lambda: dict(DEFAULT_KIND_WEIGHTS))
    # Notices are batched and sent every this many simulated days (weekly in the real API).
    webhook_cadence_days: int = Field(default=7, ge=1)
    webhook_batch_size: int = Field(default=1000, ge=1)  # notices per POST (GUESS)
    webhook_retries: int = Field(default=0, ge=0)  # none documented: no retry by default
    webhook_retry_delay_s: float = Field(default=1.0, ge=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_status: str = "changed"  # the older Clean page says "changed_experience"
    # Promotions at the same company do not trigger experience webhooks (spec §9.2 default).
    webhook_on_role_changed: bool = False
    subscriptions_per_minute: int = Field(default=9, ge=1)
    simulate_rps: int = Field(default=1, ge=1)
    simulate_delay_s: float = Field(default=1.0, ge=0)
    subscription_days: int = Field(default=91, ge=1)
    subscription_renew_days: int = Field(default=91, ge=1)
    subscription_max_lifetime_days: int = Field(default=365, ge=1)
    # Renew within this many (world clock) seconds of creation: 409 "still initialising".
    subscription_init_s: float = Field(default=0, ge=0)
    subscription_max_ids: int = Field(default=300_000, ge=1)
    subscriptions_max_per_key: int = Field(default=500, ge=1)
    subscriptions_page_size: int = Field(default=1000, ge=1)

    def rps_for(self, endpoint_class: str) -> int:
        """Per-key limit of an endpoint class ("collect", "search", "bulk")."""
        limits = {"collect": self.collect_rps, "search": self.search_rps, "bulk": self.bulk_rps}
        if endpoint_class not in limits:
            raise ValueError(f"unknown endpoint class {endpoint_class!r}")
        return limits[endpoint_class]
