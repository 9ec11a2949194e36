"""What every store module shares: the document type and the translation of pymongo's errors."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bson.errors import InvalidDocument
from pymongo.errors import (
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteError,
)

from worker.errors import StoreRejectedError, StoreUnavailableError

Doc = dict[str, Any]

_CONFIGURED_TIMEOUTS = re.compile(r" \(configured timeouts: [^)]*\)")


# Server error codes that mean "try again" (elections, shutdowns, write conflicts, timeouts).
_TRANSIENT_CODES = frozenset({6, 7, 50, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})


@asynccontextmanager
async def translated(what: str) -> AsyncIterator[None]:
    """Turn pymongo failures into our errors (DuplicateKeyError is for callers to handle).

    The server refusing *this* document (validation, a `$`-prefixed key, too large) is permanent:
    retrying it as an outage would loop until the queue dropped the job. Everything else (no
    server, a timeout, an election) is an outage of our store: retried, never the item's fault.
    """
    try:
        yield
    except DuplicateKeyError:
        raise
    except (InvalidDocument, DocumentTooLarge) as exc:
        raise StoreRejectedError(f"MongoDB {what} refused the document: {type(exc).__name__}: {exc}") from exc
    except (ConnectionFailure, ServerSelectionTimeoutError) as exc:
        raise StoreUnavailableError(f"MongoDB {what}: {type(exc).__name__}: {_why(exc)}") from exc
    except (WriteError, OperationFailure) as exc:
        if exc.code in _TRANSIENT_CODES or exc.has_error_label("RetryableWriteError"):
            raise StoreUnavailableError(f"MongoDB {what}: {type(exc).__name__}: {exc}") from exc
        raise StoreRejectedError(f"MongoDB {what} refused: {type(exc).__name__}: {exc}") from exc
    except PyMongoError as exc:
        raise StoreUnavailableError(f"MongoDB {what}: {type(exc).__name__}: {_why(exc)}") from exc


def _why(exc: PyMongoError) -> str:
    """pymongo's message, without the whole topology description a server-selection timeout appends
    (the first server's error already says why) and the timeouts it repeats."""
    text = str(exc)
    if isinstance(exc, ServerSelectionTimeoutError):
        text = text.split(", Timeout: ", 1)[0]
    return _CONFIGURED_TIMEOUTS.sub("", text)
