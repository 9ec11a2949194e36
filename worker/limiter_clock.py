"""Two things that keep a granted request close to its slot on this process's clock.

The limiter books slots on Redis time; a task sleeps on `time.monotonic()`. Two kinds of lateness
sit between them, and the adaptive margin's samples (slot to response) cannot see the first:

1. **Reading the reply late.** A slot was mapped to local time as `reply received + wait`, so a reply
   that reached the task late (its event loop busy with other tasks, the process not scheduled, the
   other callers of the same batch resumed first) moved the slot itself later, by that delay. On
   2 cores with 8 processes (`bench peers`, 8x8) this delay had a median of 0.2 ms, a p99 of
   2.5-5 ms and a maximum of 10 ms: lateness every margin must absorb, and the samples, measured from
   the moved slot, never showed it. `ClockOffset` maps Redis time with the least-delayed reply of the
   last second instead, as NTP does with the fastest of its exchanges.
2. **Waking late.** The same causes wake a task after its slot: in that bench, a median of 0.8 ms,
   a p99 of 2-4 ms, and once or twice a row 7-14 ms. A request that leaves 10 ms late meets the
   20 ms of arrival jitter the margin was measured for, and the pair can put N + 1 requests in one
   sliding second. `LateSlots` lets such a task give its slot up and book again: an unused slot
   costs 1/N of a second, a 429 a second's cool-down for the whole fleet. A budget keeps a host that
   is always late from giving up all its slots; its lateness then shows in the margin's samples.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

_US = 1_000_000


@dataclass(slots=True)
class ClockOffset:
    """`time.monotonic()` minus Redis `TIME`, from the least-delayed reply of the last `window_s`.

    A reply noted at local time `t` with server time `s` shows `t - s = offset + delay`, delay >= 0,
    so the smallest recent value is the closest to the true offset. The window follows clock drift;
    a reply that claims a delay over `jump_s` is not a delay but a clock that moved (a failover to a
    server whose clock disagrees): the window starts again from it, so such a change can make slots
    early by at most `jump_s`, for at most `window_s`.
    """

    window_s: float = 1.0
    jump_s: float = 0.02
    # (noted at, offset): offsets increasing front to back, so the front is the window's minimum.
    _seen: deque[tuple[float, float]] = field(default_factory=deque)

    def note(self, local_s: float, server_us: int) -> None:
        offset_s = local_s - server_us / _US
        if self._seen and offset_s - self._seen[0][1] > self.jump_s:
            self._seen.clear()
        while self._seen and self._seen[-1][1] >= offset_s:
            self._seen.pop()
        self._seen.append((local_s, offset_s))
        while self._seen[0][0] < local_s - self.window_s:
            self._seen.popleft()

    def local_s(self, server_us: int) -> float:
        """The local moment of a Redis time (call `note` with the reply that carried it first)."""
        if not self._seen:
            raise RuntimeError("ClockOffset.local_s before any reply was noted")
        return server_us / _US + self._seen[0][1]


@dataclass(slots=True)
class LateSlots:
    """Whether a task that woke `late_s` after its slot should give the slot up and book again.

    Yes if later than `limit_s + spread_s / 6`, unless this process has already given up its share.
    Why the spread: the margin was measured with sends up to a few ms late, so a send `d` beyond that
    draws a 429 only with a partner N slots later whose arrival jitter (J <= spread) is early by
    `spread - d`; for uniform jitter the odds are about `(d / J)^2 / 2`, and an unused slot is worth
    a 429 (1/54 s against 1 s of the fleet) at about 1.5 % odds, d ~ J / 6. A fixed 5 ms gave up
    1-5 slots per 20 s row at 0 ms jitter (0.985-0.990 against run 8's 0.992) where the floor
    margin had 7.6 ms of room. The share: each grant earns `budget` of a give-up, a give-up spends
    one, and at most `burst` can be saved up. So at most `budget` of its slots (0.5 %) go unused
    however late the host runs.
    """

    limit_s: float = 0.005
    budget: float = 0.005
    burst: float = 2.0
    given_up: int = 0
    _credit: float = 1.0

    def gives_up(self, late_s: float, spread_s: float = 0.0) -> bool:
        self._credit = min(self.burst, self._credit + self.budget)
        if late_s <= self.limit_s + spread_s / 6 or self._credit < 1.0:
            return False
        self._credit -= 1.0
        self.given_up += 1
        return True
