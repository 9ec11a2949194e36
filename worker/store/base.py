"""What every store module shares: the document type and the translation of pymongo's errors."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pymongo.errors import DuplicateKeyError, PyMongoError, ServerSelectionTimeoutError

from worker.errors import StoreUnavailableError

Doc = dict[str, Any]

_CONFIGURED_TIMEOUTS = re.compile(r" \(configured timeouts: [^)]*\)")


@asynccontextmanager
async def translated(what: str) -> AsyncIterator[None]:
    """Turn any pymongo failure into StoreUnavailableError (DuplicateKeyError is for callers to handle)."""
    try:
        yield
    except DuplicateKeyError:
        raise
    except PyMongoError as exc:
        raise StoreUnavailableError(f"MongoDB {what}: {type(exc).__name__}: {_why(exc)}") from exc


def _why(exc: PyMongoError) -> str:
    """pymongo's message, without the whole topology description a server-selection timeout appends
    (the first server's error already says why) and the timeouts it repeats."""
    text = str(exc)
    if isinstance(exc, ServerSelectionTimeoutError):
        text = text.split(", Timeout: ", 1)[0]
    return _CONFIGURED_TIMEOUTS.sub("", text)
