"""Fleet-wide live figures, written to Redis by every worker for the dashboard (`worker.fleet_view` reads).

Prometheus counters are per process; an operator looking at one page wants the fleet. So each worker
also keeps a few small in-memory tallies, fed by the same observer hooks as `worker.metrics.Metrics`
(the limiter's `GrantObserver`, the client's `ResponseObserver`), and flushes them once a second in
one pipelined round trip: grants per second per endpoint class, 429s per minute, a sample of limiter
waits, the last `x-credits-remaining`, and a heartbeat (host, pid, concurrency, jobs in flight).

Hooks run on hot paths: they only touch memory and never raise. A flush that fails (Redis away) drops
that second's tallies: these are live figures, not records (runs and syncs are kept in MongoDB).
Buckets are stamped with Redis time (the offset is re-read on every flush), so hosts with skewed clocks
still add into the same second. Nothing here holds an API key, a run id or an employee id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
import structlog

from worker import keys
from worker.redis_errors import REDIS_FAILURES

log = structlog.get_logger("employee_sync.fleet_stats")

FLUSH_EVERY_S = 1.0
GRANTS_TTL_S = 600  # the rate chart shows two minutes; a little history for a late look
R429_TTL_S = 3900  # 429s per minute over the last hour
WAITS_TTL_S = 300
WAITS_KEPT = 1000  # per class per minute: enough for a p95, bounded whatever the rate
WAITS_PER_FLUSH = 200
CREDIT_SAMPLE_EVERY_S = 5.0
CREDIT_SAMPLES_KEPT_S = 3600
PRUNE_EVERY_FLUSHES = 30
WORKER_FORGOTTEN_AFTER_S = 600  # a registry entry not refreshed for this long is removed
FLEET_RECORDER = "fleet_recorder"  # the worker's ctx key


class FleetRecorder:
    """Implements `GrantObserver` and `ResponseObserver` structurally, like `Metrics`."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        api_key: str,
        concurrency: int,
        endpoint_classes: Sequence[str] = keys.ENDPOINT_CLASSES,
        host: str | None = None,
        pid: int | None = None,
        flush_every_s: float = FLUSH_EVERY_S,
    ) -> None:
        self._redis = client
        self._api_key = api_key  # only to name the limiter's cool-down keys; never written anywhere
        self._classes = tuple(endpoint_classes)
        self._flush_every_s = flush_every_s
        self.host = host or socket.gethostname()
        self.pid = os.getpid() if pid is None else pid
        self.worker_id = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:6]}"
        self.concurrency = concurrency
        self.in_flight = 0
        self._started_at = time.time()
        self._offset_s = 0.0  # Redis time minus local time
        self._grants: Counter[tuple[str, int]] = Counter()
        self._r429: Counter[tuple[str, int]] = Counter()
        self._waits: defaultdict[tuple[str, int], list[float]] = defaultdict(list)
        self._credits: tuple[int, float] | None = None
        self._last_credit_sample_s = 0.0
        self._flushes = 0
        self._task: asyncio.Task[None] | None = None

    def now_s(self) -> float:
        return time.time() + self._offset_s

    # --- hooks (memory only, never raise) ---------------------------------------------------

    def observe_given_up(self, endpoint_class: str) -> None:
        pass  # the dashboard shows grants and waits; a given-up slot is in this process's metrics

    def observe_grant(self, endpoint_class: str, waited_s: float) -> None:
        now = self.now_s()
        self._grants[(endpoint_class, int(now))] += 1
        waits = self._waits[(endpoint_class, int(now // 60))]
        if len(waits) < WAITS_PER_FLUSH:
            waits.append(max(0.0, waited_s))

    def observe_response(
        self, endpoint_class: str, status: int | None, credits_remaining: int | None
    ) -> None:
        now = self.now_s()
        if status == 429:
            self._r429[(endpoint_class, int(now // 60))] += 1
        if credits_remaining is not None:
            self._credits = (credits_remaining, now)

    def job_started(self) -> None:
        self.in_flight += 1

    def job_ended(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Flush (register) at once and then every second, in a task of its own. Nothing is awaited
        here: a worker's start-up cancelled half-way must not leave its clients open."""
        self._task = asyncio.create_task(self._loop(), name="fleet-stats")

    async def stop(self) -> None:
        """Flush what is left and leave the registry (a SIGKILLed worker just stops beating)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(*REDIS_FAILURES):
            await self.flush()
            await self._redis.hdel(keys.FLEET_WORKERS, self.worker_id)  # type: ignore[misc]

    async def _loop(self) -> None:
        while True:
            try:
                await self.flush()
            except REDIS_FAILURES as exc:
                log.debug("fleet_stats.flush_failed", error=type(exc).__name__)
            await asyncio.sleep(self._flush_every_s)

    # --- the flush --------------------------------------------------------------------------

    async def flush(self) -> None:
        grants, self._grants = self._grants, Counter()
        r429, self._r429 = self._r429, Counter()
        waits, self._waits = self._waits, defaultdict(list)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.time()
            self._queue_counts(pipe, grants, r429, waits)
            self._queue_credits(pipe)
            pipe.hset(keys.FLEET_WORKERS, self.worker_id, self._heartbeat())
            for cls in self._classes:
                pipe.get(keys.limiter_cooldown_key(self._api_key, cls))  # type: ignore[arg-type]
            replies = await pipe.execute()
        seconds, micros = replies[0]
        redis_now_s = int(seconds) + int(micros) / 1e6
        self._offset_s = redis_now_s - time.time()
        await self._copy_cooldowns(replies[-len(self._classes) :], redis_now_s)
        self._flushes += 1
        if self._flushes % PRUNE_EVERY_FLUSHES == 1:
            await self._prune_registry(redis_now_s)

    def _queue_counts(
        self,
        pipe: Any,
        grants: Counter[tuple[str, int]],
        r429: Counter[tuple[str, int]],
        waits: defaultdict[tuple[str, int], list[float]],
    ) -> None:
        for (cls, second), count in grants.items():
            key = keys.fleet_grants_key(cls, second // 60)
            pipe.hincrby(key, str(second), count)
            pipe.expire(key, GRANTS_TTL_S)
        for (cls, minute), count in r429.items():
            key = keys.fleet_429_key(cls, minute)
            pipe.incrby(key, count)
            pipe.expire(key, R429_TTL_S)
        for (cls, minute), samples in waits.items():
            key = keys.fleet_waits_key(cls, minute)
            pipe.rpush(key, *(f"{w:.4f}" for w in samples))
            pipe.ltrim(key, -WAITS_KEPT, -1)
            pipe.expire(key, WAITS_TTL_S)

    def _queue_credits(self, pipe: Any) -> None:
        if self._credits is None:
            return
        remaining, at_s = self._credits
        pipe.hset(keys.FLEET_CREDITS, mapping={"remaining": remaining, "at_s": f"{at_s:.3f}"})
        if at_s - self._last_credit_sample_s >= CREDIT_SAMPLE_EVERY_S:
            self._last_credit_sample_s = at_s
            member = f"{at_s:.3f}:{remaining}:{self.worker_id}"
            pipe.zadd(keys.FLEET_CREDIT_SAMPLES, {member: at_s})
            pipe.zremrangebyscore(keys.FLEET_CREDIT_SAMPLES, "-inf", at_s - CREDIT_SAMPLES_KEPT_S)

    def _heartbeat(self) -> str:
        return json.dumps(
            {
                "host": self.host,
                "pid": self.pid,
                "concurrency": self.concurrency,
                "in_flight": self.in_flight,
                "started_at_s": round(self._started_at, 3),
                "last_seen_s": round(self.now_s(), 3),
            },
            separators=(",", ":"),
        )

    async def _copy_cooldowns(self, raw: list[Any], redis_now_s: float) -> None:
        """Publish each active limiter cool-down under a key the API can read without the API key."""
        now_us = int(redis_now_s * 1e6)
        active = []
        for cls, value in zip(self._classes, raw, strict=True):
            with contextlib.suppress(TypeError, ValueError):
                until_us = int(value)
                if until_us > now_us:
                    active.append((cls, until_us))
        if not active:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for cls, until_us in active:
                pipe.set(keys.fleet_cooldown_key(cls), str(until_us), px=max(1, (until_us - now_us) // 1000))
            await pipe.execute()

    async def _prune_registry(self, redis_now_s: float) -> None:
        entries = await self._redis.hgetall(keys.FLEET_WORKERS)  # type: ignore[misc]
        stale = [
            worker_id
            for worker_id, raw in entries.items()
            if _last_seen_s(raw) < redis_now_s - WORKER_FORGOTTEN_AFTER_S
        ]
        if stale:
            await self._redis.hdel(keys.FLEET_WORKERS, *stale)  # type: ignore[misc]


def _last_seen_s(raw: bytes | str) -> float:
    try:
        return float(json.loads(raw).get("last_seen_s", 0.0))
    except (ValueError, AttributeError):
        return 0.0


JobFunction = Callable[..., Awaitable[str]]


def track_in_flight(job: JobFunction) -> JobFunction:
    """Count the job as in flight on the worker's `FleetRecorder` (in ctx) while it runs."""

    async def tracked(ctx: dict[str, Any], *args: Any) -> str:
        recorder = ctx.get(FLEET_RECORDER)
        if not isinstance(recorder, FleetRecorder):
            return await job(ctx, *args)
        recorder.job_started()
        try:
            return await job(ctx, *args)
        finally:
            recorder.job_ended()

    tracked.__name__ = getattr(job, "__name__", "job")
    tracked.__qualname__ = getattr(job, "__qualname__", tracked.__name__)
    return tracked


class Fanout:
    """One observer that tells several: the limiter and the client each take exactly one."""

    def __init__(self, *observers: Any) -> None:
        self._observers = observers

    def observe_grant(self, endpoint_class: str, waited_s: float) -> None:
        for observer in self._observers:
            observer.observe_grant(endpoint_class, waited_s)

    def observe_given_up(self, endpoint_class: str) -> None:
        for observer in self._observers:
            observer.observe_given_up(endpoint_class)

    def observe_response(
        self, endpoint_class: str, status: int | None, credits_remaining: int | None
    ) -> None:
        for observer in self._observers:
            observer.observe_response(endpoint_class, status, credits_remaining)
