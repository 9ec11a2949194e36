"""Credit budgets of syncs, fleet-wide on Redis: per sync per period, and one ceiling for all.

The scheduler reserves the collect credits a tick plans before it creates the run (one credit per
planned collect, an upper bound: a profile another run is already collecting costs nothing more).
Counters are per budget period (a day by default, `SYNC_BUDGET_PERIOD_S`) and expire by themselves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from worker import keys
from worker.redis_errors import redis_boundary

_KEEP_PERIODS = 3


@dataclass(frozen=True, slots=True)
class BudgetView:
    period: int
    period_ends_s: float  # unix time the period ends
    spent: int
    limit: int | None  # the sync's own; None: unlimited
    global_spent: int
    global_limit: int | None

    def remaining(self) -> int | None:
        """Credits this sync may still plan this period (None: no limit applies)."""
        left = [
            limit - spent
            for limit, spent in ((self.limit, self.spent), (self.global_limit, self.global_spent))
            if limit is not None
        ]
        return max(0, min(left)) if left else None


class SyncBudgets:
    def __init__(self, client: aioredis.Redis, *, period_s: float, global_limit: int | None) -> None:
        self._redis = client
        self.period_s = period_s
        self.global_limit = global_limit

    def period_now(self, now_s: float | None = None) -> int:
        return int((time.time() if now_s is None else now_s) // self.period_s)

    async def view(self, sync_name: str, limit: int | None) -> BudgetView:
        period = self.period_now()
        async with redis_boundary("sync budget read"):
            spent, total = await self._redis.mget(
                keys.sync_credits_key(sync_name, period), keys.sync_global_credits_key(period)
            )
        return BudgetView(
            period=period,
            period_ends_s=(period + 1) * self.period_s,
            spent=int(spent or 0),
            limit=limit,
            global_spent=int(total or 0),
            global_limit=self.global_limit,
        )

    async def reserve(self, sync_name: str, period: int, credits: int) -> None:
        if credits <= 0:
            return
        ttl_s = max(1, int(self.period_s * _KEEP_PERIODS))
        async with redis_boundary("sync budget"), self._redis.pipeline(transaction=True) as pipe:
            for key in (keys.sync_credits_key(sync_name, period), keys.sync_global_credits_key(period)):
                pipe.incrby(key, credits)
                pipe.expire(key, ttl_s)
            await pipe.execute()
