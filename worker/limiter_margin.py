"""The adaptive safety margin: measure the arrival jitter the fleet causes and suffers, and space
slots so that it still fits in every sliding second.

Why a margin at all: slots are spaced evenly, `interval = 1 / (rate x (1 - m))`, but requests reach
the API late by a varying amount. If any two requests N slots apart can differ in lateness by D
seconds, N + 1 of them fit in one sliding second unless `N x interval > 1 + D`, i.e. `m > D / (1 + D)`
(3 % ≈ 31 ms, 1 % ≈ 10 ms).

The estimator: every grant remembers the local moment its slot was due; the response to the request
that used it (same asyncio task) closes the sample `response seen - slot due`. That sum holds all the
variable parts between the slot and the API counting the request (our wake-up lag, a cool-down
look-up, the uplink) plus parts that do not matter (server time, downlink), so its spread can only
over-state the arrival jitter, never under-state it: the margin errs towards fewer requests, not 429s.

Each process reports the bounds `p0.1` and `p99.9` of its last samples and how many it has, once a
second. Redis keeps the reports of the last 30 s and pools them (`gcra.lua`, mode `report`): the
fleet's spread D is the highest `p99.9` minus the lowest `p0.1` of all fresh reports, because two
requests N slots apart may come from different processes (or hosts at different distances from the
API), so what must fit is the lateness difference across the fleet, not within one process. The
margin follows it: at once upwards, downwards by at most `narrow_per_s` per second of fleet time. A
429 doubles the margin at once and, for `hold_s`, the margin does not narrow below 1.25 x the one
that proved too little. Bounds `[floor, ceiling]` keep a bad estimate from starving or endangering
the fleet.

Warm-up: the margin stays at `start` until the fleet holds `min_samples` settled samples in all
(`JitterSamples`: a sample counts once its slot is 0.1 s old, so the slow responses of its
moment are in); until then each process reports after every newly settled one, so the first
margin comes
as soon as the fleet has measured enough, however many processes share the samples (K processes
each see 1/K of the grants). Slots booked during warm-up keep the start's spacing even after the
margin is measured, and a fleet of K x C tasks would book K x C of them at once; so until the first
margin, slots are booked at most `warmup_ahead_s` ahead (the rest wait and ask again), and about
`min_samples` slots plus 0.1 s of them pay the start margin, whatever the fleet's size. With
fewer pooled samples than p99.9 can resolve, the spread is the range, which under-states the spread
of the jitter it was drawn from. Scaling it by the mean shortfall, `(n + 1) / (n - 1)` for uniform
jitter, still left it short half the time, and slots booked 2 s ahead on such a first margin drew
a 429 one second later (0-20 ms, 4 and 8 processes). So the script scales the range to an upper
bound instead: `range_scale(n)`, the factor the range of n uniform draws falls short of with
probability `range_miss` (0.1 %) only: x1.82 at 16 samples, x1.19 at 54, x1.05 at 200.
"""

from __future__ import annotations

import math
from collections import deque
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from worker.keys import EndpointClass

_US = 1_000_000


@dataclass(frozen=True, slots=True)
class AdaptiveMargin:
    """How the fleet's margin moves. `None` in its place (RateLimiter(margin=None)) is the fixed margin."""

    floor: float = 0.0075  # 7.6 ms: the arrival-lateness range on loopback was 5.2-6.5 ms (bench/README.md)
    ceiling: float = 0.10
    # Until the fleet has measured its jitter: 51 ms of it fits; a wider link pays one early 429.
    start: float = 0.05
    narrow_per_s: float = 0.002  # 0.2 percentage point per second: 5 s from 3 % to 2 %
    report_every_s: float = 1.0
    min_samples: int = 16  # the first margin waits until the fleet's fresh reports hold this many
    warmup_ahead_s: float = 0.1  # before the first margin, slots are booked at most this far ahead
    window: int = 4096  # samples a process keeps per class: its spread follows the last ones
    quantile: float = 0.999
    stale_s: float = 30.0  # a process that stopped reporting stops counting after this
    hold_s: float = 300.0
    # Below `quantile`'s resolution: P(the scaled range under-states). The first margin is set as
    # measured (later ones narrow slowly), and jitter plus lateness is less even than uniform, so
    # this is 0.1 %, not 1 %: x1.82 at 16 samples where 1 % gave x1.54.
    range_miss: float = 0.001

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor <= self.ceiling < 0.5:
            raise ValueError(f"need 0 <= floor <= ceiling < 0.5, got [{self.floor}, {self.ceiling}]")
        if not self.floor <= self.start <= self.ceiling:
            raise ValueError(
                f"need floor <= start <= ceiling, got {self.start} for [{self.floor}, {self.ceiling}]"
            )

    def script_args(self) -> list[int]:
        """narrow_ppm_per_s, stale_us, hold_us, min_samples, the fewest samples the quantile can
        resolve and range_miss in ppm, as `gcra.lua` takes them after the reporter id."""
        resolvable = math.ceil(1.0 / (1.0 - self.quantile) - 1e-9)
        return [
            round(self.narrow_per_s * _US),
            round(self.stale_s * _US),
            round(self.hold_s * _US),
            self.min_samples,
            resolvable,
            round(self.range_miss * _US),
        ]


def range_scale(n: int, miss: float) -> float:
    """1 / x for the x with P(range of n draws from U(0, J) <= x J) = miss, i.e. n x^(n-1) - (n-1) x^n.

    The range scaled by this under-states J with probability `miss`. `gcra.lua` computes the same
    by the same bisection; this copy is the reference its tests compare with.
    """
    if n < 2:
        return 1.0
    lo, hi = 0.0, 1.0
    for _ in range(40):
        x = (lo + hi) / 2
        if n * x ** (n - 1) - (n - 1) * x**n < miss:
            lo = x
        else:
            hi = x
    return 2 / (lo + hi)


def margin_for_spread(spread_s: float) -> float:
    """The smallest margin that keeps N in every sliding second when arrivals vary by `spread_s`."""
    return spread_s / (1.0 + spread_s)


class JitterSamples:
    """The last `window` slot-to-response times of one endpoint class in this process (seconds).

    Only settled samples count: those whose slot lies `settle_s` in the past. A sample exists once
    its response is in, so at any moment the requests still in flight are the slow ones; counting the
    samples in as they come lets the first handful miss the top of the spread. In one 8x8 row at
    0-20 ms, the first 16 responses spanned 12.7 ms where the row's spanned 22.9: a first margin of
    1.9 % instead of 2.4 %, and the slots booked on it drew a 429 two seconds later. Waiting
    `settle_s` (well above any spread the ceiling admits) lets every request of a slot be answered.
    """

    def __init__(self, window: int = 4096, settle_s: float = 0.1) -> None:
        self._samples: deque[tuple[float, float]] = deque(maxlen=window)  # (slot due, sample)
        self._settle_s = settle_s

    def add(self, sample_s: float, due_s: float = -math.inf) -> None:
        """A sample of the slot due at `due_s` (`time.monotonic()`); without it, settled at once."""
        self._samples.append((due_s, sample_s))

    def settled(self, now_s: float = math.inf) -> list[float]:
        cutoff_s = now_s - self._settle_s
        return [sample for due, sample in self._samples if due <= cutoff_s]

    def bounds_s(self, quantile: float, now_s: float = math.inf) -> tuple[float, float]:
        """The `1 - quantile` and `quantile` samples (the range with fewer than the quantile resolves)."""
        ordered = sorted(self.settled(now_s))
        n = len(ordered)
        if n == 0:
            return 0.0, 0.0
        return ordered[math.floor((1.0 - quantile) * (n - 1))], ordered[math.ceil(quantile * (n - 1))]

    def report(self, quantile: float, now_s: float = math.inf) -> str:
        """`lo_us:hi_us:n`, what `gcra.lua` pools across the fleet (lateness is never negative)."""
        lo, hi = self.bounds_s(quantile, now_s)
        n = len(self.settled(now_s))
        return f"{max(0, round(lo * _US))}:{max(0, round(hi * _US))}:{n}"


@dataclass(frozen=True, slots=True)
class PendingGrant:
    """A grant whose request has not been answered yet: which limiter, class, and when it was due."""

    owner: int
    endpoint_class: EndpointClass
    due_s: float  # time.monotonic() at the slot


# One per asyncio task: a job acquires, then calls the API in the same task, so the client's
# response hook finds the grant it belongs to without the job passing anything along.
PENDING_GRANT: ContextVar[PendingGrant | None] = ContextVar("limiter_pending_grant", default=None)


class ResponseObserver(Protocol):
    """`worker.client.ResponseObserver`, restated so this module need not import the client."""

    def observe_response(
        self, endpoint_class: str, status: int | None, credits_remaining: int | None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class ResponseTee:
    """Hands every response to two observers: the metrics and the limiter's jitter samples."""

    first: ResponseObserver
    second: ResponseObserver

    def observe_response(
        self, endpoint_class: str, status: int | None, credits_remaining: int | None
    ) -> None:
        self.first.observe_response(endpoint_class, status, credits_remaining)
        self.second.observe_response(endpoint_class, status, credits_remaining)
