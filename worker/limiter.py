"""The global rate limiter: every worker on every host books its request slots here.

Strategy: reservation GCRA with burst 1. Each acquire books the next free slot,
`slot = max(now, TAT, cooldown)`, moves TAT to `slot + interval`, and the caller sleeps until its slot.
Slots are therefore spaced by `interval = 1 / (rate * (1 - margin))` fleet-wide, which keeps every
sliding second at or under the limit while using nearly all of it. The margin is fixed
(`safety_margin`) or follows the jitter the fleet measures (`margin=AdaptiveMargin(...)`, see
`worker.limiter_margin`). Storage: four Redis keys per (API key, endpoint class), updated by one
atomic Lua script (`gcra.lua`) on Redis `TIME`, so hosts with skewed clocks still agree.

A 429 from upstream calls `penalize`: the bucket's TAT and a cool-down key jump to
`now + Retry-After + jitter` (Retry-After capped at `retry_after_cap_s`), so every worker's next
booking lands after it; workers that booked a slot before the 429 and wake inside the cool-down book
again instead of firing. A cool-down that ends within the acquire timeout is slept through; a longer
one raises `LimiterBusyError` carrying the remaining wait, which the retry policy treats as our own
back-pressure (deferred by that wait, never dead-lettered).

At most one Redis round trip per grant in the common case, fewer under load: callers of one process
that ask while a booking call is in flight are booked together in the next call (up to 64 consecutive
slots, each still checked against the horizon). The script's reply carries the bucket's cool-down
and the server time, and each process keeps the freshest such view per bucket. Just before its slot
(`recheck_s / 2`) a caller asks Redis again only if no reply it has seen is recent enough (within
`recheck_s` of the slot) to prove no 429 was recorded in between, so a slot booked before a 429 still
never fires inside the cool-down, and the look-up's round trip does not make the request late.

A slot is put on the local clock with the least-delayed reply of the last second, not with the
reply that booked it, so a reply read late does not move the slot; a task that wakes more than
`late_limit_s` plus a sixth of the margin's spread after its slot gives it up and books again,
within a budget (`worker.limiter_clock`).

Lost state (FLUSHDB, failover to an empty replica) restarts the bucket one interval past the
booking horizon, so slots booked before the loss and after it never share a second (`gcra.lua`).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Protocol

import redis.asyncio as aioredis

from worker import keys
from worker.errors import TransientError
from worker.keys import EndpointClass
from worker.limiter_clock import ClockOffset, LateSlots
from worker.limiter_margin import PENDING_GRANT, AdaptiveMargin, JitterSamples, PendingGrant
from worker.redis_errors import redis_boundary

_SCRIPT = files("worker").joinpath("gcra.lua").read_text(encoding="utf-8")
_US = 1_000_000
_PPM = 1_000_000
_OWNERS = itertools.count(1)
# Callers of one process that ask while a booking is in flight are booked together, in one call.
_MAX_BATCH = 64


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
    margin_ppm: int
    horizon_us: int  # how far ahead the script booked (shorter during an adaptive warm-up)


@dataclass(slots=True)
class _Batch:
    """Callers waiting for the next booking call of one bucket in this process."""

    waiting: list[asyncio.Future[_Reply]] = field(default_factory=list)
    flushing: bool = False


class GrantObserver(Protocol):
    """Told about every granted slot and how long it took (e.g. `worker.metrics.Metrics`)."""

    def observe_grant(self, endpoint_class: str, waited_s: float) -> None: ...

    def observe_given_up(self, endpoint_class: str) -> None: ...


class RateLimiter:
    """`safety_margin` is the fixed margin; with `margin=AdaptiveMargin(...)` it is ignored: the
    margin starts at the policy's `start` and the fleet's first `min_samples` samples, pooled, set it
    to what was measured (`worker.limiter_margin`)."""

    def __init__(
        self,
        client: aioredis.Redis,
        api_key: str,
        rates_per_s: Mapping[EndpointClass, float],
        *,
        safety_margin: float = 0.03,
        margin: AdaptiveMargin | None = None,
        max_ahead_s: float = 2.0,
        acquire_timeout_s: float = 30.0,
        retry_after_cap_s: float = 120.0,
        default_retry_after_s: float = 1.0,
        recheck_s: float = 0.002,
        late_limit_s: float | None = 0.005,
        rng: random.Random | None = None,
        observer: GrantObserver | None = None,
    ) -> None:
        self._redis = client
        self._script = client.register_script(_SCRIPT)
        self._api_key = api_key
        self._rates = dict(rates_per_s)
        self._adaptive = margin
        # An adaptive margin starts at `start` (5 %): before the fleet has measured its jitter, too
        # wide costs a few tenths of a second of budget, too narrow costs a 429 and a cool-down.
        self._start_ppm = round((margin.start if margin is not None else safety_margin) * _PPM)
        self._margin_ppm = {cls: self._start_ppm for cls in rates_per_s}
        self._max_ahead_us = round(max_ahead_s * _US)
        # Until the fleet's margin is measured, book only a little ahead: those slots keep the
        # ceiling's spacing, and K x C tasks asking at once would otherwise book K x C of them.
        self._warmup_ahead_us = round(margin.warmup_ahead_s * _US) if margin else self._max_ahead_us
        self._acquire_timeout_s = acquire_timeout_s
        self._retry_after_cap_s = retry_after_cap_s
        self._default_retry_after_s = default_retry_after_s
        # A reply older than this at the slot's moment no longer proves "no 429 since": look again.
        # 2 ms is the order of the window a look-up itself leaves (its reply to the request leaving).
        self._recheck_us = round(recheck_s * _US)
        self._views = {cls: _View() for cls in rates_per_s}
        self._clock = ClockOffset()
        # None: never give a late slot up (`worker.limiter_clock.LateSlots`).
        self._late = (
            {cls: LateSlots(limit_s=late_limit_s) for cls in rates_per_s} if late_limit_s is not None else {}
        )
        self._batches = {cls: _Batch() for cls in rates_per_s}
        self._flushes: set[asyncio.Task[None]] = set()
        window = margin.window if margin is not None else 2
        self._samples = {cls: JitterSamples(window) for cls in rates_per_s}
        self._next_report_s = dict.fromkeys(rates_per_s, 0.0)
        self._measured = dict.fromkeys(rates_per_s, False)  # has the fleet's first margin been set?
        self._reported_at = dict.fromkeys(rates_per_s, 0)  # settled samples at the last report
        self._owner = next(_OWNERS)
        self._reporter_id = uuid.uuid4().hex[:12]
        self._rng = rng or random.Random()
        self._observer = observer

    def effective_rate_per_s(self, endpoint_class: EndpointClass) -> float:
        """The rate this limiter grants with the margin it last saw (fixed, or the fleet's)."""
        return self._rates[endpoint_class] * (1.0 - self._margin_ppm[endpoint_class] / _PPM)

    def margin(self, endpoint_class: EndpointClass) -> float:
        return self._margin_ppm[endpoint_class] / _PPM

    async def acquire(self, endpoint_class: EndpointClass) -> Grant:
        """Book the next slot for this class and sleep until it; retries queue behind everyone else."""
        started = time.monotonic()
        await self._maybe_report(endpoint_class)
        while True:
            reply = await self._book(endpoint_class)
            if not reply.booked:
                # The queue of booked slots reaches past the horizon: wait for it to drain a bit.
                # Spread the askers, but by less than the horizon: the bucket must not run dry.
                spread_s = min(0.05, reply.horizon_us / _US / 4)
                pause_s = (reply.wait_us - reply.horizon_us) / _US + self._rng.uniform(0, spread_s)
                self._check_timeout(started, pause_s)
                await asyncio.sleep(pause_s)
                continue
            due_s = self._clock.local_s(reply.slot_us)
            if await self._sleep_to_slot(endpoint_class, reply, due_s):
                self._check_timeout(started, 0.0)  # a 429 cool-down covers the slot: book again
            elif not self._gives_up(endpoint_class, reply, due_s):
                return self._granted(endpoint_class, reply, due_s, started)

    def slots_given_up(self, endpoint_class: EndpointClass) -> int:
        """Slots this process woke too late for and left unused (`worker.limiter_clock.LateSlots`)."""
        late = self._late.get(endpoint_class)
        return late.given_up if late is not None else 0

    def observe_response(
        self, endpoint_class: str, status: int | None, credits_remaining: int | None
    ) -> None:
        """The client's response hook (`worker.client.ResponseObserver`): closes a jitter sample."""
        pending = PENDING_GRANT.get()
        if pending is None or pending.owner != self._owner or pending.endpoint_class != endpoint_class:
            return
        PENDING_GRANT.set(None)
        if status is not None and self._adaptive is not None:
            self._samples[pending.endpoint_class].add(time.monotonic() - pending.due_s, pending.due_s)

    def observe_sample(self, endpoint_class: EndpointClass, sample_s: float) -> None:
        """Add one slot-to-response time by hand (what `observe_response` does for a real request)."""
        self._samples[endpoint_class].add(sample_s)

    async def penalize(self, endpoint_class: EndpointClass, retry_after_s: float | None) -> float:
        """Slow the whole fleet after an upstream 429; returns the pause actually applied (s).

        `retry_after_s` is the 429's Retry-After as the client parsed it; a 429 without one pauses
        for `default_retry_after_s` (one place decides that, not every caller).

        The pause is capped at `retry_after_cap_s`: a far-future Retry-After must not stall the fleet
        until someone deletes a key. A non-finite value is the caller's bug (the client parses the
        header into a finite number), so it is refused rather than guessed at.
        """
        if retry_after_s is None:
            retry_after_s = self._default_retry_after_s
        if not math.isfinite(retry_after_s):
            raise ValueError(f"retry_after_s must be finite, got {retry_after_s!r}")
        # Jitter spreads the resume of fleets that saw the 429 at slightly different moments.
        pause_s = max(0.0, retry_after_s) * (1.0 + self._rng.uniform(0.0, 0.2))
        pause_s = min(pause_s, self._retry_after_cap_s)
        await self._call(endpoint_class, "penalize", round(pause_s * _US))
        return pause_s

    def _gives_up(self, endpoint_class: EndpointClass, reply: _Reply, due_s: float) -> bool:
        # A slot that was free when booked (no wait) proves nothing about lateness: the reply's own
        # delay is all it shows, and no booked queue stands right behind it.
        late = self._late.get(endpoint_class)
        margin = self._margin_ppm[endpoint_class] / _PPM
        spread_s = margin / (1.0 - margin)
        if late is None or reply.wait_us <= 0 or not late.gives_up(time.monotonic() - due_s, spread_s):
            return False
        if self._observer is not None:
            self._observer.observe_given_up(endpoint_class)
        return True

    def _granted(self, endpoint_class: EndpointClass, reply: _Reply, due_s: float, started: float) -> Grant:
        grant = Grant(slot_us=reply.slot_us, waited_s=time.monotonic() - started)
        PENDING_GRANT.set(PendingGrant(self._owner, endpoint_class, due_s))
        if self._observer is not None:
            self._observer.observe_grant(endpoint_class, grant.waited_s)
        return grant

    async def _book(self, endpoint_class: EndpointClass) -> _Reply:
        """One slot (or a refusal), booked together with the other callers waiting right now."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Reply] = loop.create_future()
        batch = self._batches[endpoint_class]
        batch.waiting.append(future)
        if not batch.flushing:
            batch.flushing = True
            # A task of its own, so a caller cancelled mid-call cannot strand the others.
            task = loop.create_task(self._flush(endpoint_class))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
        return await future

    async def _flush(self, endpoint_class: EndpointClass) -> None:
        batch = self._batches[endpoint_class]
        try:
            while batch.waiting:
                taken = [f for f in batch.waiting[:_MAX_BATCH] if not f.done()]
                del batch.waiting[:_MAX_BATCH]
                if not taken:
                    continue
                try:
                    replies = await self._book_many(endpoint_class, len(taken))
                except Exception as exc:  # Redis away: every caller of this batch hears it
                    for future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for future, reply in zip(taken, replies, strict=True):
                    if not future.done():  # a caller cancelled meanwhile leaves its slot unused
                        future.set_result(reply)
        finally:
            batch.flushing = False

    async def _book_many(self, endpoint_class: EndpointClass, count: int) -> list[_Reply]:
        known_cooldown_us = self._views[endpoint_class].cooldown_us
        raw = await self._call(endpoint_class, "acquire", known_cooldown_us, count, self._warmup_ahead_us)
        booked, _, first_us, cooldown_us, now_us, margin_ppm = (int(x) for x in raw[:6])
        interval_us, horizon_us = float(raw[6]), int(raw[7])
        replies = []
        for i in range(count):
            slot_us = first_us + round(i * interval_us)
            replies.append(
                _Reply(i < booked, slot_us - now_us, slot_us, cooldown_us, now_us, margin_ppm, horizon_us)
            )
        return replies

    async def _maybe_report(self, endpoint_class: EndpointClass) -> None:
        """Send this process's jitter bounds to the fleet's margin: every `report_every_s`, and
        during warm-up after every newly settled sample (`worker.limiter_margin`)."""
        policy = self._adaptive
        if policy is None:
            return
        now_s = time.monotonic()
        if self._measured[endpoint_class] and now_s < self._next_report_s[endpoint_class]:
            return
        settled = len(self._samples[endpoint_class].settled(now_s))
        if self._measured[endpoint_class]:
            if settled < 2:
                return
        elif settled == self._reported_at[endpoint_class]:
            return  # warm-up: nothing newly settled since the last report
        self._next_report_s[endpoint_class] = now_s + policy.report_every_s
        self._reported_at[endpoint_class] = settled
        report = self._samples[endpoint_class].report(policy.quantile, now_s)
        raw = await self._call(endpoint_class, "report", report, self._reporter_id, *policy.script_args())
        self._measured[endpoint_class] = int(raw[6]) == 1

    def _keys(self, endpoint_class: EndpointClass) -> list[str]:
        return [
            keys.limiter_tat_key(self._api_key, endpoint_class),
            keys.limiter_cooldown_key(self._api_key, endpoint_class),
            keys.limiter_margin_key(self._api_key, endpoint_class),
            keys.limiter_jitter_key(self._api_key, endpoint_class),
        ]

    def _common_args(self, endpoint_class: EndpointClass) -> list[str | int | float]:
        policy = self._adaptive
        floor, ceiling = (policy.floor, policy.ceiling) if policy else (0.0, 0.0)
        return [
            _US / self._rates[endpoint_class],
            self._max_ahead_us,
            self._start_ppm,
            1 if policy else 0,
            round(floor * _PPM),
            round(ceiling * _PPM),
        ]

    async def _sleep_to_slot(self, endpoint_class: EndpointClass, reply: _Reply, due_s: float) -> bool:
        """Sleep until the slot (`due_s`, local clock); True if a 429 cool-down now covers it.

        When the cool-down must be looked up, the look-up is made `recheck_s / 2` before the slot
        and the rest of the wait slept after it: its round trip (and the wake-up it needs) then
        happens before the slot instead of delaying the request, which is lateness every margin
        must absorb. Its reply still lies within `recheck_s` of the slot, so it proves what the
        look-up at the slot proved; if it does not (clock offset), the slot looks again.
        """
        if self._views[endpoint_class].server_now_us < reply.slot_us - self._recheck_us:
            await _sleep_until(due_s - self._recheck_us / 2 / _US)
            if await self._cooled_down_since(endpoint_class, reply.slot_us):
                return True
        await _sleep_until(due_s)
        return await self._cooled_down_since(endpoint_class, reply.slot_us)

    async def _cooled_down_since(self, endpoint_class: EndpointClass, slot_us: int) -> bool:
        """True if a 429 cool-down now covers a slot we booked before it was set.

        Answered from this process's freshest view when it can be: a cool-down already seen over
        the slot, or a reply from within `recheck_s` of the slot that showed none (always so when
        the booking itself waited no longer than that). Otherwise one look-up of the cool-down key.
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
        server_now_us = int(seconds) * _US + int(micros)
        self._clock.note(time.monotonic(), server_now_us)
        view.note(server_now_us, int(raw or 0))
        return view.cooldown_us > slot_us

    def _check_timeout(self, started: float, next_pause_s: float) -> None:
        """Give up when the next pause would end past the acquire timeout; say how long is left."""
        if time.monotonic() - started + next_pause_s > self._acquire_timeout_s:
            raise LimiterBusyError(
                f"no rate-limit slot within {self._acquire_timeout_s:.1f}s "
                f"(next booking possible in {next_pause_s:.1f}s)",
                retry_after_s=next_pause_s,
            )

    async def _call(self, endpoint_class: EndpointClass, mode: str, *extra: str | int) -> list[bytes]:
        """Run the script; note the cool-down, server time and margin every reply carries."""
        args = [mode, *self._common_args(endpoint_class), *extra]
        async with redis_boundary("rate limiter storage"):
            raw: list[bytes] = await self._script(keys=self._keys(endpoint_class), args=args)
        self._clock.note(time.monotonic(), int(raw[4]))
        self._views[endpoint_class].note(int(raw[4]), int(raw[3]))
        self._margin_ppm[endpoint_class] = int(raw[5])
        return raw


async def _sleep_until(deadline_s: float) -> None:
    """Sleep until `deadline_s` on `time.monotonic()`; at once if it has passed."""
    delay_s = deadline_s - time.monotonic()
    if delay_s > 0:
        await asyncio.sleep(delay_s)
