"""What every store module shares: the document type and the translation of pymongo's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo.errors import DuplicateKeyError, PyMongoError

from worker.errors import StoreUnavailableError

Doc = dict[str, Any]


@asynccontextmanager
async def translated(what: str) -> AsyncIterator[None]:
    """Turn any pymongo failure into StoreUnavailableError (DuplicateKeyError is for callers to handle)."""
    try:
        yield
    except DuplicateKeyError:
        raise
    except PyMongoError as exc:
        raise StoreUnavailableError(f"MongoDB {what}: {type(exc).__name__}: {exc}") from exc
