"""The AsyncMongoClient lifecycle; the sink, run records and dead-letter hang off it.

The client and the collections are private: callers use the intention-named methods of
`employees`, `runs`, `dead_letters` and `ledger`, so MongoDB's query language stays inside this package.
"""

from __future__ import annotations

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError

from worker.errors import ConfigError
from worker.store.base import Doc, translated
from worker.store.changes import ChangeFeed
from worker.store.dashboard import DashboardQueries
from worker.store.deadletters import DeadLetters
from worker.store.employees import EmployeeSink
from worker.store.history import SyncHistory
from worker.store.ledger import DataRequestLedger
from worker.store.runs import RunStore
from worker.store.syncs import SyncStore
from worker.store.webhooks import WebhookStore

EMPLOYEES = "employees"
RUNS = "runs"
RUN_INPUTS = "run_inputs"
CHANGES = "changes"
DEAD_LETTERS = "dead_letters"
COUNTERS = "counters"
WEBHOOK_SUBSCRIPTIONS = "webhook_subscriptions"
WEBHOOK_INBOX = "webhook_inbox"
WEBHOOK_NOTICES = "webhook_notices"
DATA_REQUESTS = "data_requests"
SYNCS = "syncs"
SYNC_MEMBERS = "sync_members"


class MongoStore:
    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        self._client = client
        self._database = database
        self._db: AsyncDatabase[Doc] = client[database]
        self.runs = RunStore(self._db[RUNS], self._db[RUN_INPUTS])
        self.changes = ChangeFeed(self._db[CHANGES], self._db[COUNTERS], self.runs.kind_of)
        self.employees = EmployeeSink(self._db[EMPLOYEES], self.changes)
        self.webhooks = WebhookStore(
            self._db[WEBHOOK_SUBSCRIPTIONS], self._db[WEBHOOK_INBOX], self._db[WEBHOOK_NOTICES]
        )
        self.dead_letters = DeadLetters(self._db[DEAD_LETTERS])
        self.history = SyncHistory(self._db[EMPLOYEES])
        self.dashboard = DashboardQueries(self._db[EMPLOYEES], self._db[DEAD_LETTERS])
        self.ledger = DataRequestLedger(self._db[DATA_REQUESTS])
        self.syncs = SyncStore(self._db[SYNCS], self._db[SYNC_MEMBERS])

    @classmethod
    def open(cls, url: str, database: str, *, timeout_s: float = 5.0) -> MongoStore:
        timeout_ms = int(timeout_s * 1000)
        try:
            client: AsyncMongoClient[Doc] = AsyncMongoClient(
                url,
                tz_aware=True,
                serverSelectionTimeoutMS=timeout_ms,
                connectTimeoutMS=timeout_ms,
                socketTimeoutMS=timeout_ms * 6,
                appname="employee-sync",
            )
        except ConfigurationError as exc:  # InvalidURI and friends: the URL, not the server
            raise ConfigError(f"MONGODB_URL is not usable: {exc}") from exc
        return cls(client, database)

    async def ping(self) -> None:
        async with translated("ping"):
            await self._client.admin.command("ping")

    async def ensure_indexes(self) -> None:
        """Idempotent; shorthand names are indexed for lookup only: they change and get reused."""
        async with translated("create_index"):
            await self._db[EMPLOYEES].create_index([("profile.shorthand_names", ASCENDING)])
            await self._db[EMPLOYEES].create_index([("sync.synced_at", ASCENDING)])
            # Run pages sort by (created_at, _id) newest first: the tie-breaker is in the index, so a
            # page of 20 reads 20 runs instead of sorting every run (or every run in that state).
            await self._db[RUNS].create_index([("created_at", ASCENDING), ("_id", ASCENDING)])
            await self._db[RUNS].create_index(
                [("state", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)]
            )
            await self._db[RUN_INPUTS].create_index([("run_id", ASCENDING), ("seq", ASCENDING)])
            # A search id found on two pages is looked up by value (multikey): see RunStore.seen_elsewhere.
            await self._db[RUN_INPUTS].create_index([("run_id", ASCENDING), ("items", ASCENDING)])
            await self._db[CHANGES].create_index([("employee_id", ASCENDING)])
        await self.dead_letters.ensure_indexes()
        await self.changes.ensure_indexes()
        await self.webhooks.ensure_indexes()
        await self.ledger.ensure_indexes()
        await self.syncs.ensure_indexes()

    async def drop_database(self) -> None:
        """Tests and benchmarks: throw away everything this store holds."""
        async with translated("drop database"):
            await self._client.drop_database(self._database)

    async def close(self) -> None:
        await self._client.close()
