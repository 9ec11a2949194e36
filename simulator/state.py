"""Everything a running simulator remembers, in one object owned by its aiohttp app.

Credits change only through `charge` and `set_credits`, so the rule "only a 200 is billed" has
one place to live.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from simulator.clock import SimClock
from simulator.config import POPULATION_FIELDS, SimulatorConfig
from simulator.notifier import Notifier
from simulator.population import Population
from simulator.ratelimit import SlidingWindowLimiter, WindowStats
from simulator.search_cache import SearchCache
from simulator.subscriptions import SubscriptionStore
from simulator.world import World

ENDPOINT_CLASSES = ("collect", "search", "bulk")
# What `x-credits-remaining` says when credits are unlimited: clients parse it as an int.
UNLIMITED_CREDITS_HEADER = 1_000_000_000


def key_fingerprint(api_key: str) -> str:
    """How stats name an API key without revealing it."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]


def fault_seed(config: SimulatorConfig) -> str:
    # Not the population's seed string, so fault draws and profiles are independent streams.
    return f"faults:{config.seed}"


def build_population(config: SimulatorConfig) -> Population:
    return Population(
        config.seed,
        config.population,
        naming=config.url_field_naming,
        date_format=config.last_updated_format,
    )


@dataclass(eq=False)
class SimulatorState:
    config: SimulatorConfig
    population: Population
    limiter: SlidingWindowLimiter = field(default_factory=SlidingWindowLimiter)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.monotonic
    credits: int | None = None
    credits_charged: int = 0
    requests_total: int = 0
    status_counts: Counter[str] = field(default_factory=Counter)
    search_cache: SearchCache = field(default_factory=SearchCache)
    # The world clock (`simulator.clock`): days for profile changes, subscriptions, bulk expiry.
    world_clock: SimClock = field(default_factory=SimClock)
    world: World = field(init=False)
    subscriptions: SubscriptionStore = field(default_factory=SubscriptionStore)
    notifier: Notifier = field(default_factory=Notifier)
    # Subscription endpoints: 9 per minute; simulate: 1 per second (spec §7.1), per key.
    subscription_limiter: SlidingWindowLimiter = field(default_factory=lambda: SlidingWindowLimiter(60.0))
    simulate_limiter: SlidingWindowLimiter = field(default_factory=SlidingWindowLimiter)

    def __post_init__(self) -> None:
        self.world = World(self.world_clock)

    @classmethod
    def from_config(cls, config: SimulatorConfig) -> SimulatorState:
        return cls(
            config=config,
            population=build_population(config),
            rng=random.Random(fault_seed(config)),
            credits=config.credits,
        )

    # -- credits ---------------------------------------------------------------------------

    def can_afford(self, cost: int) -> bool:
        return self.credits is None or self.credits >= cost

    def charge(self, cost: int) -> bool:
        """Bill one successful (200) response; False, and nothing billed, if it cannot be paid.

        Checked again here, not only on admission, because concurrent requests can pass
        admission on the same last credit while one of them sleeps in injected latency.
        """
        if not self.can_afford(cost):
            return False
        if self.credits is not None:
            self.credits -= cost
        self.credits_charged += cost
        return True

    def set_credits(self, balance: int | None) -> None:
        self.credits = balance

    def credits_header(self) -> int:
        return UNLIMITED_CREDITS_HEADER if self.credits is None else self.credits

    # -- configuration and reset -----------------------------------------------------------

    def apply_config(self, new: SimulatorConfig, patched: set[str]) -> None:
        """Copy patched fields onto the live config; a patched `credits` sets the balance."""
        changed = {name for name in patched if getattr(self.config, name) != getattr(new, name)}
        for name in patched:
            setattr(self.config, name, getattr(new, name))
        if "credits" in patched:
            self.set_credits(new.credits)
        if changed & POPULATION_FIELDS:
            self.population = build_population(self.config)
            self.search_cache.clear()  # not needed for correctness (new generation); frees memory
            self.world.reset()  # its history names profiles of the old population
        if "seed" in changed:
            self.rng.seed(fault_seed(self.config))

    def reset(self) -> None:
        self.limiter.reset()
        self.status_counts.clear()
        self.requests_total = 0
        self.credits_charged = 0
        self.set_credits(self.config.credits)
        self.population.clear_changes()
        self.search_cache.clear()
        self.world_clock.reset()
        self.world.reset()
        self.subscriptions.clear()
        self.notifier.reset()
        self.subscription_limiter.reset()
        self.simulate_limiter.reset()
        # A reset run is then as reproducible as a fresh simulator.
        self.rng.seed(fault_seed(self.config))

    # -- statistics ------------------------------------------------------------------------

    def record_status(self, status: str) -> None:
        self.requests_total += 1
        self.status_counts[status] += 1

    def stats(self) -> dict[str, Any]:
        per_key: dict[str, dict[str, Any]] = {}
        per_class = {name: WindowStats() for name in ENDPOINT_CLASSES}
        for (api_key, endpoint_class), counts in sorted(self.limiter.stats().items()):
            per_key.setdefault(key_fingerprint(api_key), {})[endpoint_class] = _counts(counts)
            per_class.setdefault(endpoint_class, WindowStats()).add(counts)
        classes = {
            name: {**_counts(counts), "limit_rps": self.config.rps_for(name)}
            for name, counts in per_class.items()
        }
        return {
            "classes": classes,
            "keys": per_key,
            "status_counts": dict(sorted(self.status_counts.items())),
            "requests_total": self.requests_total,
            "credits_remaining": self.credits,
            "credits_charged": self.credits_charged,
            "webhooks": self.notifier.stats.to_json(),
            "world": {"changes": len(self.world.history), "pending": len(self.world.pending)},
        }


def _counts(stats: WindowStats) -> dict[str, Any]:
    rate = stats.accepted_rps
    return {
        "accepted": stats.accepted,
        "rejected_429": stats.rejected_429,
        "max_in_any_second": stats.max_in_any_second,
        "accepted_rps": None if rate is None else round(rate, 3),
        "first_accepted_s": stats.first_accepted_s,
        "last_accepted_s": stats.last_accepted_s,
    }


STATE = web.AppKey("simulator_state", SimulatorState)
