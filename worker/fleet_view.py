"""Reading the fleet-wide live figures that `worker.fleet_stats` writes: one pipeline.

What the dashboard shows per endpoint class (granted per second against the limit, utilisation, limiter
wait p50/p95, 429s per minute, an active cool-down), the credit balance with its burn rate, and the
live workers. The current second is still being counted (workers flush once a second), so the series
ends two seconds back.

The read is one round trip, as the workers' flush is: the pipeline starts with TIME, and the keys it
reads are planned from the local clock plus the offset to the Redis clock that the previous read's
TIME measured. When the plan from that guess is not the plan of the Redis time the TIME reply gave
(the guess fell in another second: the first read, a clock jump), it is read again with that plan.
A reader may add its own commands to the same round trip (`read_fleet_with`: the dashboard adds
the credits gate and the queue's figures).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import redis.asyncio as aioredis

from worker import keys
from worker.redis_errors import redis_boundary, reply_or_raise

RATE_WINDOW_S = 120
SETTLE_S = 2  # seconds still being flushed by the workers: left out of the series
UTILISATION_OVER_S = 10
R429_MINUTES = 30
BURN_WINDOW_S = 900  # burn rate from the credit samples of the last 15 minutes
MIN_BURN_SPAN_S = 10.0
WORKER_LIVE_S = 15.0  # a heartbeat older than this: the worker is not counted as live
PLAN_ATTEMPTS = 3  # reads with a plan from a guessed Redis time before giving up on matching it


@dataclass(frozen=True, slots=True)
class ClassView:
    endpoint_class: str
    limit_rps: float
    series_start_s: int  # epoch second of per_second[0]
    per_second: list[int]
    rps: float  # over the last UTILISATION_OVER_S settled seconds
    utilisation: float
    wait_p50_s: float | None
    wait_p95_s: float | None
    r429_per_minute: list[int]  # oldest first, the current minute last
    cooldown_remaining_s: float


@dataclass(frozen=True, slots=True)
class CreditsView:
    remaining: int | None
    at_s: float | None
    burn_per_h: float | None
    exhausted_at_s: float | None


@dataclass(frozen=True, slots=True)
class WorkerView:
    worker_id: str
    host: str
    pid: int
    concurrency: int
    in_flight: int
    started_at_s: float
    last_seen_s: float
    age_s: float


@dataclass(frozen=True, slots=True)
class FleetView:
    now_s: float
    classes: list[ClassView]
    credits: CreditsView
    workers: list[WorkerView] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        # Shallow per dataclass: `asdict` would deep-copy every per-second list item by item.
        return {
            "now_s": self.now_s,
            "classes": [_fields(c) for c in self.classes],
            "credits": _fields(self.credits),
            "workers": [_fields(w) for w in self.workers],
        }


def _fields(item: Any) -> dict[str, Any]:
    return {f.name: getattr(item, f.name) for f in fields(item)}


async def read_fleet(
    client: aioredis.Redis, limits_rps: Mapping[str, float], *, window_s: int = RATE_WINDOW_S
) -> FleetView:
    view, _ = await read_fleet_with(client, limits_rps, None, window_s=window_s)
    return view


async def read_fleet_with(
    client: aioredis.Redis,
    limits_rps: Mapping[str, float],
    also: Callable[[Any], None] | None,
    *,
    window_s: int = RATE_WINDOW_S,
) -> tuple[FleetView, list[Any]]:
    """The fleet view and the raw replies of the commands `also` queued after the fleet's own on
    the same pipeline (the caller parses them; errors come back in place, as exceptions)."""
    classes = list(limits_rps)
    guess_s = time.time() + _CLOCK.offset_s
    async with redis_boundary("fleet stats read"):
        for _ in range(PLAN_ATTEMPTS):
            plan = _Plan(classes, int(guess_s), window_s)
            async with client.pipeline(transaction=False) as pipe:
                pipe.time()
                plan.queue(pipe, guess_s)
                if also is not None:
                    also(pipe)
                replies = await pipe.execute(raise_on_error=False)
            own, extra = replies[: 1 + plan.commands], replies[1 + plan.commands :]
            _raise_first_error(own)
            seconds, micros = own[0]
            now_s = int(seconds) + int(micros) / 1e6
            _CLOCK.offset_s = now_s - time.time()
            if plan.same_as(_Plan(classes, int(now_s), window_s)):
                break
            guess_s = time.time() + _CLOCK.offset_s
    return plan.build(own[1:], now_s, limits_rps), extra


def _raise_first_error(replies: list[Any]) -> None:
    for reply in replies:
        reply_or_raise("fleet stats read", reply)


class _RedisClock:
    """Redis time minus local time, as the last fleet read measured it (0 before the first one)."""

    def __init__(self) -> None:
        self.offset_s = 0.0


_CLOCK = _RedisClock()


class _Plan:
    """The commands of one read, in order, and how to turn their replies into a view."""

    def __init__(self, classes: Sequence[str], now: int, window_s: int) -> None:
        self.classes = classes
        self.last = now - SETTLE_S  # the newest settled second
        self.first = self.last - window_s + 1
        self.grant_minutes = list(range(self.first // 60, self.last // 60 + 1))
        self.r429_minutes = list(range(now // 60 - R429_MINUTES + 1, now // 60 + 1))
        self.wait_minutes = [now // 60 - 1, now // 60]
        self.commands = len(classes) * (len(self.grant_minutes) + 1 + len(self.wait_minutes) + 1) + 4

    def same_as(self, other: _Plan) -> bool:
        """Whether `other` reads the same keys and the same seconds (so these replies are its)."""
        return (self.first, self.last, self.r429_minutes) == (other.first, other.last, other.r429_minutes)

    def queue(self, pipe: Any, now_s: float) -> None:
        for cls in self.classes:
            for minute in self.grant_minutes:
                pipe.hgetall(keys.fleet_grants_key(cls, minute))
            pipe.mget([keys.fleet_429_key(cls, m) for m in self.r429_minutes])
            for minute in self.wait_minutes:
                pipe.lrange(keys.fleet_waits_key(cls, minute), 0, -1)
            pipe.get(keys.fleet_cooldown_key(cls))
        pipe.hgetall(keys.FLEET_CREDITS)
        window_start = now_s - BURN_WINDOW_S
        pipe.zrangebyscore(keys.FLEET_CREDIT_SAMPLES, window_start, "+inf", start=0, num=1)
        pipe.zrevrangebyscore(keys.FLEET_CREDIT_SAMPLES, "+inf", window_start, start=0, num=1)
        pipe.hgetall(keys.FLEET_WORKERS)

    def build(self, replies: list[Any], now_s: float, limits_rps: Mapping[str, float]) -> FleetView:
        per_class = len(self.grant_minutes) + 1 + len(self.wait_minutes) + 1
        classes = [
            self._class_view(cls, replies[i * per_class : (i + 1) * per_class], now_s, limits_rps[cls])
            for i, cls in enumerate(self.classes)
        ]
        credits_raw, oldest, newest, workers_raw = replies[len(self.classes) * per_class :]
        return FleetView(
            now_s=round(now_s, 3),
            classes=classes,
            credits=_credits(credits_raw, oldest, newest),
            workers=_workers(workers_raw, now_s),
        )

    def _class_view(self, cls: str, replies: list[Any], now_s: float, limit: float) -> ClassView:
        n = len(self.grant_minutes)
        by_second: dict[int, int] = {}
        for bucket in replies[:n]:
            for second, count in bucket.items():
                by_second[int(second)] = int(count)
        per_second = [by_second.get(s, 0) for s in range(self.first, self.last + 1)]
        recent = per_second[-UTILISATION_OVER_S:]
        rps = sum(recent) / len(recent) if recent else 0.0
        waits = sorted(float(w) for sample in replies[n + 1 : n + 1 + len(self.wait_minutes)] for w in sample)
        cooldown_raw = replies[-1]
        cooldown_s = 0.0 if cooldown_raw is None else max(0.0, int(cooldown_raw) / 1e6 - now_s)
        return ClassView(
            endpoint_class=cls,
            limit_rps=limit,
            series_start_s=self.first,
            per_second=per_second,
            rps=round(rps, 2),
            utilisation=round(rps / limit, 3) if limit > 0 else 0.0,
            wait_p50_s=_quantile(waits, 0.50),
            wait_p95_s=_quantile(waits, 0.95),
            r429_per_minute=[int(v or 0) for v in replies[n]],
            cooldown_remaining_s=round(cooldown_s, 3),
        )


def _quantile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile of sorted samples (None without samples)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return round(ordered[rank - 1], 4)


def _sample(members: list[bytes]) -> tuple[float, int] | None:
    if not members:
        return None
    at_s, remaining, _ = members[0].decode().split(":", 2)
    return float(at_s), int(remaining)


def _credits(raw: Mapping[bytes, bytes], oldest: list[bytes], newest: list[bytes]) -> CreditsView:
    remaining = int(raw[b"remaining"]) if b"remaining" in raw else None
    at_s = float(raw[b"at_s"]) if b"at_s" in raw else None
    first, last = _sample(oldest), _sample(newest)
    burn_per_s = None
    if first and last and last[0] - first[0] >= MIN_BURN_SPAN_S:
        burn_per_s = max(0.0, (first[1] - last[1]) / (last[0] - first[0]))
    exhausted_at = None
    if burn_per_s and remaining is not None and at_s is not None:
        exhausted_at = at_s + remaining / burn_per_s
    return CreditsView(
        remaining=remaining,
        at_s=at_s,
        burn_per_h=None if burn_per_s is None else round(burn_per_s * 3600, 1),
        exhausted_at_s=None if exhausted_at is None else round(exhausted_at, 1),
    )


def _workers(raw: Mapping[bytes, bytes], now_s: float) -> list[WorkerView]:
    live = []
    for worker_id, value in raw.items():
        try:
            beat = json.loads(value)
            last_seen = float(beat["last_seen_s"])
            view = WorkerView(
                worker_id=worker_id.decode(),
                host=str(beat["host"]),
                pid=int(beat["pid"]),
                concurrency=int(beat["concurrency"]),
                in_flight=int(beat["in_flight"]),
                started_at_s=float(beat["started_at_s"]),
                last_seen_s=last_seen,
                age_s=round(max(0.0, now_s - last_seen), 1),
            )
        except (ValueError, KeyError, TypeError):
            continue
        if view.age_s <= WORKER_LIVE_S:
            live.append(view)
    return sorted(live, key=lambda w: (w.host, w.pid))
