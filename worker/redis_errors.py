"""The one place Redis failures become our own error: `async with redis_boundary("what"):`.

Every module that talks to Redis (queue, limiter, progress counters, credits gate, stash, locks) wraps
its calls in this boundary, so callers only ever see `RedisUnavailableError`, whose message names
what was being done. Mirrors `worker.store.base.translated` for MongoDB.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.exceptions import RedisError

from worker.errors import RedisUnavailableError

# The reconnect loop in worker/queue.py also meets OSError from a half-open socket.
REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError)


@asynccontextmanager
async def redis_boundary(what: str) -> AsyncIterator[None]:
    """Turn any redis-py failure inside the block into RedisUnavailableError("Redis <what>: ...")."""
    try:
        yield
    except RedisError as exc:
        raise RedisUnavailableError(f"Redis {what}: {type(exc).__name__}: {exc}") from exc


def reply_or_raise[T](what: str, reply: T) -> T:
    """A reply of a pipeline run with `execute(raise_on_error=False)`, or its error (which such a
    pipeline returns in place) as RedisUnavailableError."""
    if isinstance(reply, RedisError):
        raise RedisUnavailableError(f"Redis {what}: {type(reply).__name__}: {reply}") from reply
    return reply
