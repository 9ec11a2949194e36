"""The job queue. The only module that imports arq, so the queue library can be swapped here alone.

Jobs are stored in arq's own format (JSON-serialised rather than pickled: a Redis compromise must
not become code execution in the fleet). Producers enqueue through `JobQueue.enqueue_many`, one Lua
call per batch instead of arq's one WATCH/MULTI round trip per job, with arq's dedup semantics: a job
whose id is already queued or running is not enqueued again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
import structlog
from arq import Retry
from arq.connections import RedisSettings
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.worker import Worker, func
from redis.exceptions import RedisError

from worker.errors import QueueUnavailableError, RetryJob

log = structlog.get_logger("employee_sync.queue")

JobFunction = Callable[..., Awaitable[str]]
Hook = Callable[[dict[str, Any]], Awaitable[None]]

# Jobs not started within a day are dropped by arq; a run can be resumed from MongoDB after that.
JOB_EXPIRES_MS = 86_400_000
# arq runs the lowest score first and treats a score in the future as "deferred": 1 ms after the
# epoch is due now and ahead of every normally enqueued job.
PRIORITY_SCORE = 1

# ARGV: job key prefix, result key prefix, score, expiry (ms), then (job id, payload) pairs.
_ENQUEUE_MANY = """
local added = {}
for i = 5, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('EXISTS', ARGV[1] .. id, ARGV[2] .. id) == 0 then
    redis.call('SET', ARGV[1] .. id, ARGV[i + 1], 'PX', ARGV[4])
    redis.call('ZADD', KEYS[1], ARGV[3], id)
    added[#added + 1] = 1
  else
    added[#added + 1] = 0
  end
end
return added
"""


def _dumps(value: Any) -> bytes:
    return json.dumps(value, default=repr, separators=(",", ":")).encode()


def _loads(raw: bytes) -> Any:
    return json.loads(raw)


@dataclass(frozen=True, slots=True)
class JobSpec:
    job_id: str
    args: tuple[str | int, ...]


class JobQueue:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._enqueue_many = client.register_script(_ENQUEUE_MANY)

    async def enqueue_many(
        self,
        queue_name: str,
        function: str,
        jobs: Sequence[JobSpec],
        *,
        defer_s: float = 0.0,
        priority: bool = False,
    ) -> list[bool]:
        """Enqueue a batch in one round trip; returns, per job, whether it was added (False: a dup).

        `priority` jobs sort before everything already waiting (arq takes the lowest score first).
        """
        if not jobs:
            return []
        now_ms = int(time.time() * 1000)
        score = PRIORITY_SCORE if priority else now_ms + int(defer_s * 1000)
        args: list[str | int | bytes] = [
            job_key_prefix,
            result_key_prefix,
            score,
            JOB_EXPIRES_MS,
        ]
        for job in jobs:
            payload = serialize_job(function, job.args, {}, None, now_ms, serializer=_dumps)
            args += [job.job_id, payload]
        try:
            added = await self._enqueue_many(keys=[queue_name], args=args)
        except RedisError as exc:
            raise QueueUnavailableError(f"enqueue failed: {exc}") from exc
        return [bool(flag) for flag in added]

    async def depth(self, queue_name: str) -> int:
        try:
            return int(await self._redis.zcard(queue_name))
        except RedisError as exc:
            raise QueueUnavailableError(f"queue depth failed: {exc}") from exc


def _as_arq_job(name: str, job: JobFunction) -> Callable[..., Awaitable[str]]:
    """Bind log context per job, log one summary line, and turn RetryJob into arq's Retry."""

    async def run(ctx: dict[str, Any], *args: Any) -> str:
        structlog.contextvars.bind_contextvars(
            job=name, job_id=ctx.get("job_id"), job_try=ctx.get("job_try"),
            run_id=args[0] if args else None,
        )  # fmt: skip
        started = time.monotonic()
        try:
            outcome = await job(ctx, *args)
        except RetryJob as retry:
            log.info("job.retry", defer_s=round(retry.defer_s, 3), reason=retry.reason)
            raise Retry(defer=retry.defer_s) from retry
        log.info("job.done", outcome=outcome, duration_s=round(time.monotonic() - started, 3))
        return outcome

    run.__qualname__ = name
    return run


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    redis_url: str
    queue_name: str
    concurrency: int
    job_timeout_s: float
    max_tries: int
    drain_timeout_s: int
    poll_delay_s: float = 0.1
    burst: bool = False


async def run_worker(
    options: WorkerOptions,
    functions: Mapping[str, JobFunction],
    *,
    ctx: dict[str, Any],
    on_startup: Hook,
    on_shutdown: Hook,
) -> None:
    """Run one arq worker until signalled (or, in burst mode, until the queue is empty)."""
    worker = Worker(
        functions=[func(cast(Any, _as_arq_job(name, job)), name=name) for name, job in functions.items()],
        queue_name=options.queue_name,
        redis_settings=RedisSettings.from_dsn(options.redis_url),
        ctx=ctx,
        on_startup=cast(Any, on_startup),
        on_shutdown=cast(Any, on_shutdown),
        burst=options.burst,
        max_jobs=options.concurrency,
        job_timeout=options.job_timeout_s,
        keep_result=0,  # results live in MongoDB; a kept result would also block re-enqueueing
        # Our jobs decide when to give up (and dead-letter); arq's cap only stops crash loops.
        max_tries=options.max_tries + 2,
        job_completion_wait=options.drain_timeout_s,  # SIGTERM: stop taking jobs, drain, then stop
        poll_delay=options.poll_delay_s,
        health_check_interval=30,
        job_serializer=_dumps,
        job_deserializer=_loads,
        log_results=False,
        handle_signals=not options.burst,
    )
    try:
        await worker.async_run()  # sets main_task, which a SIGTERM drain cancels to stop
    finally:
        await worker.close()
