"""The simulator's world clock: wall time plus an offset that `POST /_sim/advance` moves forward.

Everything in the simulated world that is measured in days (profile changes and their
`last_updated`, the 91-day subscription expiry, weekly webhook batches, the 30-day expiry of bulk
files) reads `now()` from one `SimClock`, held by the app state as `state.world_clock`, so one
advance moves all of them together and a test plays weeks in seconds.

Rate limiting does not use this clock: request rates are real (`SimulatorState.clock`, monotonic).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta


def wall_now() -> datetime:
    return datetime.now(UTC)


class SimClock:
    """`now()` = the wall clock (injectable for tests) + the advanced offset; never goes back."""

    def __init__(self, wall: Callable[[], datetime] = wall_now) -> None:
        self._wall = wall
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return self._wall() + self._offset

    @property
    def offset(self) -> timedelta:
        return self._offset

    @property
    def offset_s(self) -> float:
        """The offset in seconds: add it to a monotonic reading for a monotonic world clock."""
        return self._offset.total_seconds()

    def advance(self, delta: timedelta) -> datetime:
        """Move the world forward by `delta` (not negative); returns the new `now()`."""
        if delta < timedelta(0):
            raise ValueError("the world clock only moves forward")
        self._offset += delta
        return self.now()

    def reset(self) -> None:
        self._offset = timedelta(0)
