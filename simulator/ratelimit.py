"""Sliding one-second rate limit per (API key, endpoint class), with exact statistics.

A request arriving at time t is accepted iff fewer than N accepted requests lie in (t - 1, t].
Rejected requests are not recorded, so a client hammering at 429 does not lock itself out for
longer. This is stricter than the fixed (Kong-style) window the real API probably uses: a client
that passes here passes there too. `max_in_any_second` is the largest window size seen right
after an accept, which is exactly the most accepted requests in any sliding 1 s window: the
benchmark's proof that a client never exceeded the limit.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass, field

WINDOW_S = 1.0


@dataclass(slots=True)
class WindowStats:
    accepted: int = 0
    rejected_429: int = 0
    max_in_any_second: int = 0
    # Arrival times (simulator clock) of the first and last accepted request: the span over
    # which a benchmark's achieved rate is measured, free of client start-up time.
    first_accepted_s: float | None = None
    last_accepted_s: float | None = None

    def add(self, other: WindowStats) -> None:
        self.accepted += other.accepted
        self.rejected_429 += other.rejected_429
        self.max_in_any_second = max(self.max_in_any_second, other.max_in_any_second)
        firsts = [t for t in (self.first_accepted_s, other.first_accepted_s) if t is not None]
        lasts = [t for t in (self.last_accepted_s, other.last_accepted_s) if t is not None]
        self.first_accepted_s = min(firsts, default=None)
        self.last_accepted_s = max(lasts, default=None)

    @property
    def accepted_rps(self) -> float | None:
        """Accepted requests per second between the first and the last accepted one."""
        if self.first_accepted_s is None or self.last_accepted_s is None:
            return None
        span_s = self.last_accepted_s - self.first_accepted_s
        return (self.accepted - 1) / span_s if span_s > 0 else None


@dataclass(frozen=True, slots=True)
class Decision:
    accepted: bool
    limit: int
    remaining: int  # what is left in the current window after this request


@dataclass(slots=True)
class _Window:
    accepted_at: deque[float] = field(default_factory=deque)
    stats: WindowStats = field(default_factory=WindowStats)


class SlidingWindowLimiter:
    """Pure bookkeeping: the caller passes arrival times, so tests need no real clock."""

    def __init__(self, window_s: float = WINDOW_S) -> None:
        # Other windows than one second serve e.g. the subscriptions' 9 requests per minute.
        self.window_s = window_s
        self._windows: dict[tuple[str, str], _Window] = {}

    def check(self, key: str, endpoint_class: str, limit: int, now: float) -> Decision:
        window = self._windows.setdefault((key, endpoint_class), _Window())
        times = window.accepted_at
        if times and now < times[-1]:
            # Arrivals handed over out of order (handlers interleaved): treat this one as
            # arriving with the latest, which can only make the limiter stricter.
            now = times[-1]
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) >= limit:
            window.stats.rejected_429 += 1
            return Decision(False, limit, 0)
        times.append(now)
        window.stats.accepted += 1
        window.stats.max_in_any_second = max(window.stats.max_in_any_second, len(times))
        if window.stats.first_accepted_s is None:
            window.stats.first_accepted_s = now
        window.stats.last_accepted_s = now
        return Decision(True, limit, limit - len(times))

    def stats(self) -> dict[tuple[str, str], WindowStats]:
        """Per (key, endpoint class) counters; copies, safe to keep."""
        return {pair: dataclasses.replace(w.stats) for pair, w in self._windows.items()}

    def reset(self) -> None:
        self._windows.clear()
