"""Delivers webhook notifications (spec §9.3, §9.3b, §9.4) with one aiohttp client session.

For each batch of world changes (`simulator.world.Batch`), every subscription active at the
batch's time gets its notices (`simulator.subscriptions.notices`) POSTed to its `webhook_url` as
JSON arrays of at most `webhook_batch_size` items. Like the real API, a POST carries no signature,
no event id and no timestamp. A non-2xx answer, a timeout or a connection error is retried
`webhook_retries` times (default 0: no retry is documented), `webhook_retry_delay_s` apart.
Subscriptions are served concurrently (a few at a time); one subscription's POSTs go in order.

`stats` counts every POST and its answer for `/_sim/stats`: answers are keyed by status code, or
"timeout" / "error" when no answer came.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from simulator.config import SimulatorConfig
from simulator.population import Population
from simulator.subscriptions import Subscription, SubscriptionStore, notices
from simulator.world import Batch

USER_AGENT = "employee-sync-simulator-webhooks/1.0"
_CONCURRENT_SUBSCRIPTIONS = 8


@dataclass(slots=True)
class DeliveryStats:
    rounds: int = 0  # batches of world changes delivered (weekly rounds, mutate, deliver)
    posts: int = 0  # every POST attempt, retries included
    notices: int = 0  # items in POSTs answered 2xx
    retries: int = 0
    failed_posts: int = 0  # POSTs given up on after their retries
    simulated: int = 0  # `simulate` webhooks sent
    answers: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "posts": self.posts,
            "notices": self.notices,
            "retries": self.retries,
            "failed_posts": self.failed_posts,
            "simulated": self.simulated,
            "answers": dict(sorted(self.answers.items())),
        }


@dataclass(frozen=True, slots=True)
class RoundResult:
    at: str
    changes: int
    subscriptions_notified: int
    notices: int
    posts: int
    failed_posts: int

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "changes": self.changes,
            "subscriptions_notified": self.subscriptions_notified,
            "notices": self.notices,
            "posts": self.posts,
            "failed_posts": self.failed_posts,
        }


class Notifier:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stats = DeliveryStats()
        self.simulate_requests = 0  # seeds the random member of each `simulate`

    async def deliver(
        self, batch: Batch, store: SubscriptionStore, population: Population, config: SimulatorConfig
    ) -> RoundResult:
        """POST a batch's notices to every subscription active at its time."""
        self.stats.rounds += 1
        before = (self.stats.posts, self.stats.failed_posts)
        gate = asyncio.Semaphore(_CONCURRENT_SUBSCRIPTIONS)
        due = [(s, notices(s, batch, population, config)) for s in store.active_at(batch.at)]
        due = [(s, items) for s, items in due if items]

        async def one(subscription: Subscription, items: list[dict[str, Any]]) -> None:
            async with gate:
                await self._deliver_to(subscription, items, batch, config)

        await asyncio.gather(*(one(s, items) for s, items in due))
        return RoundResult(
            batch.at.isoformat(),
            len(batch.records),
            len(due),
            sum(len(items) for _, items in due),
            self.stats.posts - before[0],
            self.stats.failed_posts - before[1],
        )

    async def _deliver_to(
        self, subscription: Subscription, items: list[dict[str, Any]], batch: Batch, config: SimulatorConfig
    ) -> None:
        size = config.webhook_batch_size
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            if await self.post(subscription.webhook_url, chunk, config):
                subscription.last_webhook_sent_at = batch.at
                subscription.notices_sent += len(chunk)

    async def post(self, url: str, items: Sequence[dict[str, Any]], config: SimulatorConfig) -> bool:
        """One notification body, retried as configured; True once it is answered 2xx."""
        body = json.dumps(list(items), separators=(",", ":")).encode()
        for attempt in range(config.webhook_retries + 1):
            if attempt:
                self.stats.retries += 1
                await asyncio.sleep(config.webhook_retry_delay_s)
            self.stats.posts += 1
            answer = await self._send(url, body, config.webhook_timeout_s)
            self.stats.answers[answer] += 1
            if answer.isdigit() and 200 <= int(answer) < 300:
                self.stats.notices += len(items)
                return True
        self.stats.failed_posts += 1
        return False

    async def _send(self, url: str, body: bytes, timeout_s: float) -> str:
        session = self._client()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        try:
            async with session.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                await response.read()
                return str(response.status)
        except TimeoutError:
            return "timeout"
        except (aiohttp.ClientError, ValueError):
            return "error"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    def spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        """Run `work` in the background; `close` cancels what is still running."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def simulate(self, url: str, member_id: int, config: SimulatorConfig) -> None:
        """§9.4: one example notice with a random member, after `simulate_delay_s`."""
        await asyncio.sleep(config.simulate_delay_s)
        self.stats.simulated += 1
        await self.post(url, [{"member_id": member_id, "status": config.webhook_status}], config)

    def reset(self) -> None:
        self.stats = DeliveryStats()
        self.simulate_requests = 0

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
