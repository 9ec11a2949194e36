"""Reading the fleet-wide live figures that `worker.fleet_stats` writes: one pipeline.

What the dashboard shows per endpoint class (granted per second against the limit, utilisation, limiter
wait p50/p95, 429s per minute, an active cool-down), the credit balance with its burn rate, and the
live workers. The current second is still being counted (workers flush once a second), so the series
ends two seconds back.

The read is one Lua call (`fleet_read.lua`), which takes Redis `TIME` and reads the minute keys of
that instant: hosts with skewed clocks see the same figures, and ~25 commands cost one round trip
and one reply to parse. A reader may add its own commands to the same round trip
(`read_fleet_with`: the dashboard adds the credits gate and the queue's figures).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from importlib.resources import files
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from worker import keys
from worker.redis_errors import redis_boundary, reply_or_raise

RATE_WINDOW_S = 120
SETTLE_S = 2  # seconds still being flushed by the workers: left out of the series
UTILISATION_OVER_S = 10
R429_MINUTES = 30
BURN_WINDOW_S = 900  # burn rate from the credit samples of the last 15 minutes
MIN_BURN_SPAN_S = 10.0
WORKER_LIVE_S = 15.0  # a heartbeat older than this: the worker is not counted as live


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
    script_keys, script_args = _script_inputs(classes, window_s)
    async with redis_boundary("fleet stats read"):
        async with client.pipeline(transaction=False) as pipe:
            # By its hash, not through the pipeline's script support (a SCRIPT EXISTS round trip first).
            pipe.evalsha(_SCRIPT_SHA, len(script_keys), *script_keys, *script_args)
            if also is not None:
                also(pipe)
            own, *extra = await pipe.execute(raise_on_error=False)
        if isinstance(own, NoScriptError):  # Redis lost the script (a restart, SCRIPT FLUSH): load it
            own = await client.eval(_SCRIPT_TEXT, len(script_keys), *script_keys, *script_args)  # type: ignore[misc]
    reply_or_raise("fleet stats read", own)
    return _build(own, classes, window_s, limits_rps), extra


_SCRIPT_TEXT = files("worker").joinpath("fleet_read.lua").read_text(encoding="utf-8")
# Redis names a script by its SHA-1 (not a security use); EVAL caches it under this name.
_SCRIPT_SHA = hashlib.sha1(_SCRIPT_TEXT.encode(), usedforsecurity=False).hexdigest()


def _script_inputs(classes: Sequence[str], window_s: int) -> tuple[list[str], list[str]]:
    script_keys = [keys.FLEET_CREDITS, keys.FLEET_CREDIT_SAMPLES, keys.FLEET_WORKERS]
    script_keys += [keys.fleet_cooldown_key(cls) for cls in classes]
    args = [str(n) for n in (window_s, SETTLE_S, R429_MINUTES, BURN_WINDOW_S)]
    for cls in classes:
        args += [keys.fleet_grants_prefix(cls), keys.fleet_429_prefix(cls), keys.fleet_waits_prefix(cls)]
    return script_keys, args


def _build(
    reply: list[Any], classes: Sequence[str], window_s: int, limits_rps: Mapping[str, float]
) -> FleetView:
    (seconds, micros), per_class = reply[0], reply[1 : 1 + len(classes)]
    credits_raw, oldest, newest, workers_raw = reply[1 + len(classes) :]
    now_s = int(seconds) + int(micros) / 1e6
    last = int(seconds) - SETTLE_S  # the newest settled second, as the script read it
    return FleetView(
        now_s=round(now_s, 3),
        classes=[
            _class_view(cls, figures, last - window_s + 1, last, now_s, limits_rps[cls])
            for cls, figures in zip(classes, per_class, strict=True)
        ],
        credits=_credits(_pairs(credits_raw), oldest, newest),
        workers=_workers(_pairs(workers_raw), now_s),
    )


def _pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    """A hash as Lua returns it (field, value, field, value, ...)."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _class_view(cls: str, figures: list[Any], first: int, last: int, now_s: float, limit: float) -> ClassView:
    grants, r429, waits_raw, cooldown_raw = figures
    by_second = {int(second): int(count) for second, count in _pairs(grants).items()}
    per_second = [by_second.get(s, 0) for s in range(first, last + 1)]
    recent = per_second[-UTILISATION_OVER_S:]
    rps = sum(recent) / len(recent) if recent else 0.0
    waits = sorted(float(w) for w in waits_raw)
    cooldown_s = 0.0 if cooldown_raw is None else max(0.0, int(cooldown_raw) / 1e6 - now_s)
    return ClassView(
        endpoint_class=cls,
        limit_rps=limit,
        series_start_s=first,
        per_second=per_second,
        rps=round(rps, 2),
        utilisation=round(rps / limit, 3) if limit > 0 else 0.0,
        wait_p50_s=_quantile(waits, 0.50),
        wait_p95_s=_quantile(waits, 0.95),
        r429_per_minute=[int(v or 0) for v in r429],
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
