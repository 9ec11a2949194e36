"""The global rate limiter: every worker on every host books its request slots here.

Strategy: reservation GCRA with burst 1. Each acquire books the next free slot,
`slot = max(now, TAT, cooldown)`, moves TAT to `slot + interval`, and the caller sleeps until its slot.
Slots are therefore spaced by `interval = 1 / (rate * (1 - margin))` fleet-wide, which keeps every
sliding second at or under the limit while using nearly all of it. Storage: two Redis strings per
(API key, endpoint class), updated by one atomic Lua script (`gcra.lua`) on Redis `TIME`, so hosts
with skewed clocks still agree.

A 429 from upstream calls `penalize`: the bucket's TAT and a cool-down key jump to
`now + Retry-After + jitter` (Retry-After capped at `retry_after_cap_s`), so every worker's next
booking lands after it; workers that booked a slot before the 429 and wake inside the cool-down book
again instead of firing. A cool-down that ends within the acquire timeout is slept through; a longer
one raises `LimiterBusyError` carrying the remaining wait, which the retry policy treats as our own
back-pressure (deferred by that wait, never dead-lettered).

One Redis round trip per grant in the common case: the script's reply carries the bucket's cool-down
and the server time, and each process keeps the freshest such view per bucket. After sleeping to its
slot a caller asks Redis again only if no reply it has seen is recent enough (within `recheck_s` of
the slot) to prove no 429 was recorded in between, so a slot booked before a 429 still never fires
inside the cool-down.

Lost state (FLUSHDB, failover to an empty replica) restarts the bucket one interval past the
booking horizon, so slots booked before the loss and after it never share a second (`gcra.lua`).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import Protocol

import redis.asyncio as aioredis

from worker import keys
from worker.errors import TransientError
from worker.keys import EndpointClass
from worker.redis_errors import redis_boundary

_SCRIPT = files("worker").joinpath("gcra.lua").read_text(encoding="utf-8")
_US = 1_000_000


class LimiterBusyError(TransientError):
    """No slot could be booked within the acquire timeout: our own back-pressure, not the item's fault.

    `retry_after_s` is how long until a booking can succeed (the rest of a 429 cool-down, or the
    queue of booked slots draining to the horizon); the retry policy defers the job by that much.
    """

    retry_after_s: float

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class Grant:
    """A booked slot: when it is (Redis time, microseconds) and how long the caller waited for it."""

    slot_us: int
    waited_s: float


@dataclass(slots=True)
class _View:
    """The freshest bucket state this process has read from Redis (server time, microseconds)."""

    server_now_us: int = 0
    cooldown_us: int = 0

    def note(self, server_now_us: int, cooldown_us: int) -> None:
        self.server_now_us = max(self.server_now_us, server_now_us)
        self.cooldown_us = max(self.cooldown_us, cooldown_us)


@dataclass(frozen=True, slots=True)
class _Reply:
    booked: bool
    wait_us: int
    slot_us: int
    cooldown_us: int
    now_us: int


class GrantObserver(Protocol):
    """Told about every granted slot and how long it took (e.g. `worker.metrics.Metrics`)."""

    def observe_grant(self, endpoint_class: str, waited_s: float) -> None: ...


class RateLimiter:
    def __init__(
        self,
        client: aioredis.Redis,
        api_key: str,
        rates_per_s: Mapping[EndpointClass, float],
        *,
        safety_margin: float = 0.03,
        max_ahead_s: float = 2.0,
        acquire_timeout_s: float = 30.0,
        retry_after_cap_s: float = 120.0,
        recheck_s: float = 0.002,
        rng: random.Random | None = None,
        observer: GrantObserver | None = None,
    ) -> None:
        self._redis = client
        self._script = client.register_script(_SCRIPT)
        self._api_key = api_key
        self._interval_us = {
            cls: round(_US / (rate * (1.0 - safety_margin))) for cls, rate in rates_per_s.items()
        }
        self._max_ahead_us = round(max_ahead_s * _US)
        self._acquire_timeout_s = acquire_timeout_s
        self._retry_after_cap_s = retry_after_cap_s
        # A reply older than this at the slot's moment no longer proves "no 429 since": look again.
        # 2 ms is the order of the window a look-up itself leaves (its reply to the request leaving).
        self._recheck_us = round(recheck_s * _US)
        self._views: dict[EndpointClass, _View] = {cls: _View() for cls in rates_per_s}
        self._rng = rng or random.Random()
        self._observer = observer

    def effective_rate_per_s(self, endpoint_class: EndpointClass) -> float:
        return _US / self._interval_us[endpoint_class]

    async def acquire(self, endpoint_class: EndpointClass) -> Grant:
        """Book the next slot for this class and sleep until it; retries queue behind everyone else."""
        started = time.monotonic()
        while True:
            interval_us = self._interval_us[endpoint_class]
            known_cooldown_us = self._views[endpoint_class].cooldown_us
            reply = await self._run(
                endpoint_class, "acquire", interval_us, self._max_ahead_us, known_cooldown_us
            )
            if not reply.booked:
                # The queue of booked slots is longer than max_ahead: wait for it to drain a bit.
                pause_s = (reply.wait_us - self._max_ahead_us) / _US + self._rng.uniform(0, 0.05)
                self._check_timeout(started, pause_s)
                await asyncio.sleep(pause_s)
                continue
            if reply.wait_us > 0:
                await asyncio.sleep(reply.wait_us / _US)
            if not await self._cooled_down_since(endpoint_class, reply.slot_us):
                grant = Grant(slot_us=reply.slot_us, waited_s=time.monotonic() - started)
                if self._observer is not None:
                    self._observer.observe_grant(endpoint_class, grant.waited_s)
                return grant
            self._check_timeout(started, 0.0)

    async def penalize(self, endpoint_class: EndpointClass, retry_after_s: float) -> float:
        """Slow the whole fleet after an upstream 429; returns the pause actually applied (s).

        The pause is capped at `retry_after_cap_s`: a far-future Retry-After must not stall the fleet
        until someone deletes a key. A non-finite value is the caller's bug (the client parses the
        header into a finite number), so it is refused rather than guessed at.
        """
        if not math.isfinite(retry_after_s):
            raise ValueError(f"retry_after_s must be finite, got {retry_after_s!r}")
        # Jitter spreads the resume of fleets that saw the 429 at slightly different moments.
        pause_s = max(0.0, retry_after_s) * (1.0 + self._rng.uniform(0.0, 0.2))
        pause_s = min(pause_s, self._retry_after_cap_s)
        interval_us = self._interval_us[endpoint_class]
        pause_us = round(pause_s * _US)
        await self._run(endpoint_class, "penalize", interval_us, self._max_ahead_us, pause_us)
        return pause_s

    def _keys(self, endpoint_class: EndpointClass) -> list[str]:
        return [
            keys.limiter_tat_key(self._api_key, endpoint_class),
            keys.limiter_cooldown_key(self._api_key, endpoint_class),
        ]

    async def _cooled_down_since(self, endpoint_class: EndpointClass, slot_us: int) -> bool:
        """True if a 429 cool-down now covers a slot we booked before it was set.

        Answered from this process's freshest view when it can be: a cool-down already seen over
        the slot, or a reply from within `recheck_s` of the slot that showed none (always so when
        the booking itself waited no longer than that). Otherwise one GET of the cool-down key.
        """
        view = self._views[endpoint_class]
        if view.cooldown_us > slot_us:
            return True
        if view.server_now_us >= slot_us - self._recheck_us:
            return False
        async with redis_boundary("rate limiter storage"):
            pipe = self._redis.pipeline(transaction=False)
            pipe.time()
            pipe.get(keys.limiter_cooldown_key(self._api_key, endpoint_class))
            (seconds, micros), raw = await pipe.execute()
        view.note(int(seconds) * _US + int(micros), int(raw or 0))
        return view.cooldown_us > slot_us

    def _check_timeout(self, started: float, next_pause_s: float) -> None:
        """Give up when the next pause would end past the acquire timeout; say how long is left."""
        if time.monotonic() - started + next_pause_s > self._acquire_timeout_s:
            raise LimiterBusyError(
                f"no rate-limit slot within {self._acquire_timeout_s:.1f}s "
                f"(next booking possible in {next_pause_s:.1f}s)",
                retry_after_s=next_pause_s,
            )

    async def _run(self, endpoint_class: EndpointClass, *args: str | int) -> _Reply:
        async with redis_boundary("rate limiter storage"):
            raw = await self._script(keys=self._keys(endpoint_class), args=list(args))
        booked, wait_us, slot_us, cooldown_us, now_us = (int(x) for x in raw)
        self._views[endpoint_class].note(now_us, cooldown_us)
        return _Reply(bool(booked), wait_us, slot_us, cooldown_us, now_us)
