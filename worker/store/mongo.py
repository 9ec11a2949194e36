"""The AsyncMongoClient lifecycle and the collections."""

from __future__ import annotations

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConfigurationError

from worker.errors import ConfigError
from worker.store.base import Doc, translated
from worker.store.employees import EmployeeSink
from worker.store.records import DeadLetters, RunRecords

EMPLOYEES = "employees"
RUNS = "runs"
RUN_INPUTS = "run_inputs"
CHANGES = "changes"
DEAD_LETTERS = "dead_letters"


class MongoStore:
    """Owns one AsyncMongoClient; the sink, run records and dead-letter hang off it."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        self.client = client
        self.db: AsyncDatabase[Doc] = client[database]
        self.employees = EmployeeSink(self.collection(EMPLOYEES), self.collection(CHANGES))
        self.runs = RunRecords(self.collection(RUNS), self.collection(RUN_INPUTS))
        self.dead_letters = DeadLetters(self.collection(DEAD_LETTERS))

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

    def collection(self, name: str) -> AsyncCollection[Doc]:
        return self.db[name]

    async def ping(self) -> None:
        async with translated("ping"):
            await self.client.admin.command("ping")

    async def ensure_indexes(self) -> None:
        """Idempotent; shorthand names are indexed for lookup only: they change and get reused."""
        async with translated("create_index"):
            await self.collection(EMPLOYEES).create_index([("profile.shorthand_names", ASCENDING)])
            await self.collection(EMPLOYEES).create_index([("sync.synced_at", ASCENDING)])
            await self.collection(RUNS).create_index([("created_at", ASCENDING)])
            await self.collection(RUN_INPUTS).create_index([("run_id", ASCENDING), ("seq", ASCENDING)])
            await self.collection(DEAD_LETTERS).create_index([("run_id", ASCENDING)])
            await self.collection(CHANGES).create_index([("employee_id", ASCENDING)])

    async def close(self) -> None:
        await self.client.close()
