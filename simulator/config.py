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

DEFAULT_API_KEY = "simulator-key-0000000000000000000"

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

    def rps_for(self, endpoint_class: str) -> int:
        """Per-key limit of an endpoint class ("collect", "search", "bulk")."""
        limits = {"collect": self.collect_rps, "search": self.search_rps, "bulk": self.bulk_rps}
        if endpoint_class not in limits:
            raise ValueError(f"unknown endpoint class {endpoint_class!r}")
        return limits[endpoint_class]
