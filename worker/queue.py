"""The job queue. The only module that imports arq, so the queue library can be swapped here alone.

Jobs are stored in arq's own format (JSON-serialised rather than pickled: a Redis compromise must
not become code execution in the fleet). Producers enqueue through `JobQueue.enqueue_many`, one Lua
call per batch instead of arq's one WATCH/MULTI round trip per job, with arq's dedup semantics: a job
whose id is already queued or running is not enqueued again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
import structlog
from arq import Retry
from arq.connections import RedisSettings
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix, retry_key_prefix
from arq.cron import cron
from arq.jobs import serialize_job
from arq.worker import Worker, func
from redis.exceptions import NoScriptError, RedisError

from config.redis_target import RedisTarget
from worker import keys
from worker.errors import RedisUnavailableError, RetryJob
from worker.redis_errors import redis_boundary, reply_or_raise

log = structlog.get_logger("employee_sync.queue")

JobFunction = Callable[..., Awaitable[str]]
Hook = Callable[[dict[str, Any]], Awaitable[None]]
# Optional, in the worker's ctx under JOB_OBSERVER: told (job name, outcome) after every job run.
# The outcome is what the job returned, or "retry" (it asked to run again, or overran its deadline),
# "error" (it raised) or "cancelled" (arq's own timeout, or a shutdown).
JobObserver = Callable[[str, str], None]
JOB_OBSERVER = "job_observer"
# In the worker's ctx under POISON_HANDLER: called instead of a job whose worker died on it
# `max_worker_deaths` times; it records the job as failed (dead-letter) and returns its outcome.
PoisonHandler = Callable[[dict[str, Any], str, tuple[Any, ...]], Awaitable[str]]
POISON_HANDLER = "poison_handler"
JOB_STARTS_TTL_S = 7 * 24 * 3600

# arq drops a job not started within this long after it was queued. The queue is a bounded window,
# so a long expiry costs nothing; a fleet stopped over a long weekend keeps its window.
JOB_EXPIRES_MS = 30 * 86_400_000
# arq runs the lowest score first and treats a score in the future as "deferred": 1 ms after the
# epoch is due now and ahead of every normally enqueued job.
PRIORITY_SCORE = 1
# oldest_due_age_s looks at this many priority jobs and this many timed ones (oldest first).
_PEEK = 500
# Our deadline for a job sits this far inside arq's hard job timeout.
JOB_DEADLINE_MARGIN_S = 2.0
OVERRUN_RETRY_CAP_S = 30.0
# arq's own cap on tries. Our jobs decide when to give up: permanent errors are dead-lettered at
# once, upstream failures after MAX_TRIES, and our own stores being away is retried until they are
# back. arq would drop a job past its cap without telling us, so the cap is out of reach.
ARQ_MAX_TRIES = 1_000_000_000
# A worker that lost Redis rebuilds itself after 1, 2, 4 ... 30 s.
RECONNECT_FIRST_S = 1.0
RECONNECT_MAX_S = 30.0
RECONNECT_RESET_AFTER_S = 60.0

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


# Remove a run's queued jobs, except those a worker has already started (in-progress key present),
# with arq's retry counter (else an item fed again within a day would start at its old try number).
# ARGV: job key prefix, in-progress key prefix, retry key prefix, then job ids. Returns removed ids.
_REMOVE_QUEUED = """
local removed = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('EXISTS', ARGV[2] .. id) == 0 and redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('DEL', ARGV[1] .. id, ARGV[3] .. id)
    removed[#removed + 1] = id
  end
end
return removed
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# The age (ms) of the longest-waiting due job not started, or nil. Priority jobs (all scored alike)
# are each looked at, their enqueue time `et` read from the job; timed ones oldest first, stopping at
# the first not started. If every timed job looked at is running and there may be more, the next
# waiting one is due since no earlier than the last one looked at.
# KEYS[1]: the queue. ARGV: in-progress key prefix, job key prefix, priority score, now (ms), peek.
_OLDEST_WAITING = """
local running, job, priority, now, peek = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local oldest = nil
local function seen(age) if oldest == nil or age > oldest then oldest = age end end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', priority, 'LIMIT', 0, peek)) do
  if redis.call('EXISTS', running .. id) == 0 then
    local payload = redis.call('GET', job .. id)
    if payload then
      local ok, decoded = pcall(cjson.decode, payload)
      seen(now - ((ok and tonumber(decoded['et'])) or now))
    end
  end
end
local timed = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. priority, now, 'WITHSCORES', 'LIMIT', 0, peek)
local waiting = false
for i = 1, #timed, 2 do
  local id = timed[i]
  if redis.call('EXISTS', running .. id) == 0 and redis.call('EXISTS', job .. id) == 1 then
    seen(now - tonumber(timed[i + 1]))
    waiting = true
    break
  end
end
if not waiting and #timed == 2 * peek then seen(now - tonumber(timed[#timed])) end
return oldest
"""


# A job's lease is arq's in-progress key holding this start's token. Take it over from arq's
# placeholder value (XX: only while it exists), then extend it only while it still holds our token,
# so a start whose lease lapsed never extends the lease of the start that took the job over.
# KEYS[1]: the in-progress key. ARGV: token, lease (ms). Returns 1 while the lease is ours.
_TAKE_LEASE = """
return redis.call('SET', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[2]) and 1 or 0
"""
_EXTEND_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
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
        self._remove = client.register_script(_REMOVE_QUEUED)
        self._unlock = client.register_script(_UNLOCK)
        self._oldest_waiting = client.register_script(_OLDEST_WAITING)

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
        async with redis_boundary("enqueue"):
            added = await self._enqueue_many(keys=[queue_name], args=args)
        return [bool(flag) for flag in added]

    async def job_args(self, job_ids: Sequence[str]) -> list[tuple[Any, ...] | None]:
        """The arguments of existing jobs (None where no such job exists any more)."""
        if not job_ids:
            return []
        async with redis_boundary("job lookup"):
            raw = await self._redis.mget([job_key_prefix + job_id for job_id in job_ids])
        return [None if value is None else tuple(_loads(value)["a"]) for value in raw]

    async def remove_queued(self, queue_name: str, owner: str) -> list[str]:
        """Take out the queued (not started) jobs whose first argument is `owner` (a run id);
        returns their ids."""
        async with redis_boundary("queue read"):
            job_ids = [j.decode() for j in await self._redis.zrange(queue_name, 0, -1)]
        removed: list[str] = []
        for start in range(0, len(job_ids), 500):  # the queue is a bounded window; batches keep calls small
            batch = job_ids[start : start + 500]
            args = await self.job_args(batch)
            mine = [job_id for job_id, a in zip(batch, args, strict=True) if a and a[0] == owner]
            if mine:
                prefixes = [job_key_prefix, in_progress_key_prefix, retry_key_prefix]
                async with redis_boundary("queue update"):
                    gone = await self._remove(keys=[queue_name], args=[*prefixes, *mine])
                removed += [g.decode() if isinstance(g, bytes) else str(g) for g in gone]
        return removed

    async def owners(self, queue_name: str) -> Counter[str]:
        """How many jobs (queued or running: a started job stays in the queue until it ends) each
        owner (a job's first argument, a run id) has in the queue."""
        async with redis_boundary("queue read"):
            job_ids = [j.decode() for j in await self._redis.zrange(queue_name, 0, -1)]
        found: Counter[str] = Counter()
        for start in range(0, len(job_ids), 500):
            args = await self.job_args(job_ids[start : start + 500])
            found.update(str(a[0]) for a in args if a)
        return found

    async def try_lock(self, name: str, ttl_ms: int) -> str | None:
        """A short fleet-wide lock (SET NX PX); returns the token to unlock with, or None if held."""
        token = uuid.uuid4().hex
        async with redis_boundary("lock"):
            return token if await self._redis.set(name, token, nx=True, px=ttl_ms) else None

    async def unlock(self, name: str, token: str) -> None:
        async with redis_boundary("unlock"):
            await self._unlock(keys=[name], args=[token])

    async def depth(self, queue_name: str) -> int:
        async with redis_boundary("queue depth"):
            return int(await self._redis.zcard(queue_name))

    async def oldest_due_age_s(self, queue_name: str, *, now_ms: int | None = None) -> float | None:
        """How long the longest-waiting job that is due and not started has been due (None: none).

        A score is when the job became due: its enqueue time, or the end of its deferral (a retry's
        backoff, a search page's back-pressure wait). Priority jobs carry PRIORITY_SCORE instead of a
        time, so their enqueue time is read from the job itself. Jobs a worker has started stay in the
        sorted set until they finish; they are skipped (their in-progress key is set).

        One script call: the walk over the timed jobs stops at the first one waiting (the oldest).
        Done from here, with every job's payload read back, it cost ~20 ms of CPU per dashboard
        refresh or metrics scrape with the 500-job window queued.
        """
        args = _oldest_args(now_ms)
        async with redis_boundary("queue read"):
            age_ms = await self._oldest_waiting(keys=[queue_name], args=args)
        return None if age_ms is None else max(0, int(age_ms)) / 1000

    def queue_figures(self, pipe: Any, queue_name: str, *, now_ms: int | None = None) -> list[str | int]:
        """`depth` and `oldest_due_age_s` as two commands on a caller's pipeline (the dashboard's
        fleet read: one round trip for all of it). The script goes by its hash, not through the
        pipeline's script support (which asks SCRIPT EXISTS first: a round trip of its own); pass
        the two replies and the returned arguments to `figures_of`."""
        args = _oldest_args(now_ms)
        pipe.zcard(queue_name)
        pipe.evalsha(self._oldest_waiting.sha, 1, queue_name, *args)
        return args

    async def figures_of(
        self, replies: Sequence[Any], queue_name: str, args: list[str | int]
    ) -> tuple[int, float | None]:
        """(depth, oldest due age) from `queue_figures`' replies; a script Redis lost (a restart,
        SCRIPT FLUSH) is run the ordinary way, which loads it."""
        depth, age_ms = replies
        if isinstance(age_ms, NoScriptError):
            async with redis_boundary("queue read"):
                age_ms = await self._oldest_waiting(keys=[queue_name], args=args)
        depth, age_ms = reply_or_raise("queue depth", depth), reply_or_raise("queue read", age_ms)
        return int(depth), None if age_ms is None else max(0, int(age_ms)) / 1000


def _oldest_args(now_ms: int | None) -> list[str | int]:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return [in_progress_key_prefix, job_key_prefix, PRIORITY_SCORE, now_ms, _PEEK]


async def _deaths_before(ctx: dict[str, Any]) -> int:
    """Count this start; returns how many earlier starts never ended (their worker died)."""
    job_id = ctx.get("job_id")
    if not job_id or "redis" not in ctx:
        return 0
    async with redis_boundary("job start count"), ctx["redis"].pipeline(transaction=True) as pipe:
        pipe.incr(keys.job_starts_key(job_id))
        pipe.expire(keys.job_starts_key(job_id), JOB_STARTS_TTL_S)
        starts, _ = await pipe.execute()
    return int(starts) - 1


async def _ended(ctx: dict[str, Any]) -> None:
    job_id = ctx.get("job_id")
    if job_id and "redis" in ctx:
        # Worst case (Redis away right now): one death too many is counted for this job.
        with contextlib.suppress(RedisUnavailableError):
            async with redis_boundary("job end count"):
                await ctx["redis"].delete(keys.job_starts_key(job_id))


@contextlib.asynccontextmanager
async def _leased(ctx: dict[str, Any], lease_s: float) -> AsyncIterator[None]:
    """Hold the job's lease (arq's in-progress key, set by arq with a TTL of `lease_s`) while it runs.

    A heartbeat extends it every third of `lease_s`, so a live job keeps it however long it runs,
    and a job whose worker died is free for another worker `lease_s` after the last heartbeat
    instead of arq's default of the job timeout + 10 s.
    """
    job_id, client = ctx.get("job_id"), ctx.get("redis")
    if not job_id or client is None:
        yield
        return
    key, token, lease_ms = in_progress_key_prefix + job_id, uuid.uuid4().hex, int(lease_s * 1000)
    with contextlib.suppress(RedisUnavailableError):  # Redis away: arq's own TTL still holds the job
        async with redis_boundary("take job lease"):
            await client.register_script(_TAKE_LEASE)(keys=[key], args=[token, lease_ms])
    heartbeat = asyncio.create_task(_heartbeat(client, key, token, lease_s))
    try:
        yield
    finally:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat


async def _heartbeat(client: aioredis.Redis, key: str, token: str, lease_s: float) -> None:
    lease_ms, extend = int(lease_s * 1000), client.register_script(_EXTEND_LEASE)
    warned = False
    while True:
        await asyncio.sleep(lease_s / 3)
        try:
            async with redis_boundary("extend job lease"):
                held = await extend(keys=[key], args=[token, lease_ms])
        except RedisUnavailableError as exc:
            if not warned:  # once per job: a Redis outage would otherwise log every beat of every job
                log.warning("job.lease_unconfirmed", error=str(exc))
                warned = True
            continue  # try again at the next beat
        if not held:
            # The lease lapsed (this process stalled past it, or Redis lost it): another worker may
            # run the job too. The job goes on (its effects are idempotent); the lease is theirs now.
            log.warning("job.lease_lost", lease_s=lease_s)
            return


def _as_arq_job(
    name: str, job: JobFunction, timeout_s: float, max_deaths: int, lease_s: float
) -> Callable[..., Awaitable[str]]:
    """Bind log context per job, log one summary line, and turn RetryJob into arq's Retry.

    The job also gets a deadline a little inside arq's own: arq treats its timeout as a final
    failure (the job would be dropped), while an overrun here is retried like any transient error.
    A job whose worker died on it `max_deaths` times goes to the POISON_HANDLER instead of running.
    While it runs, the job holds a lease of `lease_s` that a heartbeat keeps extending.
    """

    async def run(ctx: dict[str, Any], *args: Any) -> str:
        structlog.contextvars.bind_contextvars(
            job=name, job_id=ctx.get("job_id"), job_try=ctx.get("job_try"),
            run_id=args[0] if args else None,
        )  # fmt: skip
        observe: JobObserver = ctx.get(JOB_OBSERVER) or _ignore
        poison: PoisonHandler | None = ctx.get(POISON_HANDLER)
        async with _leased(ctx, lease_s):
            if poison is not None and await _deaths_before(ctx) >= max_deaths:
                log.error("job.poison", deaths=max_deaths)
                outcome = await poison(ctx, name, tuple(args))
                await _ended(ctx)
                observe(name, outcome)
                return outcome
            try:
                return await _run_observed(ctx, name, job, timeout_s, args, observe)
            finally:
                await _ended(ctx)

    run.__qualname__ = name
    return run


async def _run_observed(
    ctx: dict[str, Any],
    name: str,
    job: JobFunction,
    timeout_s: float,
    args: tuple[Any, ...],
    observe: JobObserver,
) -> str:
    started = time.monotonic()
    deadline = asyncio.timeout(timeout_s)
    try:
        async with deadline:
            outcome = await job(ctx, *args)
    except RetryJob as retry:
        log.info(
            "job.retry", defer_s=round(retry.defer_s, 3), reason=retry.reason,
            duration_s=round(time.monotonic() - started, 3),
        )  # fmt: skip
        observe(name, "retry")
        raise Retry(defer=retry.defer_s) from retry
    except TimeoutError:
        if not deadline.expired():
            observe(name, "error")
            raise
        defer_s = min(OVERRUN_RETRY_CAP_S, float(ctx.get("job_try", 1)))
        log.warning(
            "job.overran",
            timeout_s=timeout_s,
            defer_s=defer_s,
            duration_s=round(time.monotonic() - started, 3),
        )
        observe(name, "retry")
        raise Retry(defer=defer_s) from None
    except asyncio.CancelledError:
        observe(name, "cancelled")
        raise
    except Exception:
        observe(name, "error")
        raise
    log.info("job.done", outcome=outcome, duration_s=round(time.monotonic() - started, 3))
    observe(name, outcome)
    return outcome


def _ignore(job: str, outcome: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    redis: RedisTarget
    queue_name: str
    concurrency: int
    job_timeout_s: float
    max_tries: int
    drain_timeout_s: int
    max_worker_deaths: int = 3
    # A running job's lease: a dead worker's jobs run again this long after its last heartbeat.
    lease_s: float = 3.0
    poll_delay_s: float = 0.1
    burst: bool = False
    # Jobs run every `every_s` seconds by one worker of the fleet (arq cron with a unique job id).
    periodic: tuple[tuple[str, JobFunction, int], ...] = ()


async def run_worker(
    options: WorkerOptions,
    functions: Mapping[str, JobFunction],
    *,
    ctx: dict[str, Any],
    on_startup: Hook,
    on_shutdown: Hook,
) -> None:
    """Run one worker until signalled (or, in burst mode, until the queue is empty).

    The long-lived clients are made once (`on_startup`) and outlive the arq worker: when Redis
    goes away, the arq worker is rebuilt after a growing pause instead of the process crashing
    and being restarted in a loop.
    """
    await on_startup(ctx)
    try:
        delay_s = RECONNECT_FIRST_S
        while True:
            started = time.monotonic()
            worker = _arq_worker(options, functions, ctx)
            try:
                await worker.async_run()  # sets main_task, which a SIGTERM drain cancels to stop
                return
            except (RedisError, OSError) as exc:
                if options.burst:
                    raise RedisUnavailableError(f"Redis worker connection: {exc}") from exc
                if time.monotonic() - started > RECONNECT_RESET_AFTER_S:
                    delay_s = RECONNECT_FIRST_S
                log.warning("worker.redis_unavailable", error=str(exc), retry_in_s=delay_s)
            finally:
                await _close_worker(worker, burst=options.burst)
            await asyncio.sleep(delay_s)
            delay_s = min(RECONNECT_MAX_S, delay_s * 2)
    finally:
        await on_shutdown(ctx)


async def _close_worker(worker: Worker, *, burst: bool) -> None:
    """arq's close. In burst mode it cancels the jobs still running and gathers them without
    `return_exceptions`, so a cancelled job's CancelledError ends its close at once (a worker
    stopped mid-job, as an embedding task's timeout does): its Redis pool stays open, and our
    `on_shutdown` closes the clients while those jobs may still be running their clean-up. A
    connection left open that way warned when collected. So cancel and collect them here first,
    as its close meant to."""
    if burst:
        running = list(worker.tasks.values())
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        worker.tasks.clear()
    with contextlib.suppress(RedisError, OSError):
        await worker.close()


def _redis_settings(target: RedisTarget) -> RedisSettings:
    """arq's connection settings: the URL, or the sentinels and the primary's name."""
    if not target.uses_sentinel:
        return RedisSettings.from_dsn(target.url)
    return RedisSettings(
        host=list(target.sentinels),
        sentinel=True,
        sentinel_master=target.master,
        database=target.db,
        username=target.username,
        password=target.password,
    )


# The ids of a poll's read that no worker has started (ARGV[1]: arq's in-progress key prefix).
_UNCLAIMED = """
local free = {}
for i = 2, #ARGV do
  if redis.call('EXISTS', ARGV[1] .. ARGV[i]) == 0 then free[#free + 1] = ARGV[i] end
end
return free
"""


class _ClaimingWorker(Worker):
    """arq's worker, minus its most expensive habit on a busy queue.

    Running jobs stay at the head of arq's queue until they finish, and each poll tries to claim
    every id it read with its own WATCH/EXISTS/ZSCORE round trips. With F jobs in flight across
    the fleet, a worker with one free slot spent ~3F round trips per poll to learn that the head
    was taken. One script call drops the started ids first; arq's own claim then runs on the
    rest, unchanged, so a job freed meanwhile is simply picked up by the next poll.
    Measured in the demo (3 workers x 25 jobs, 1,000 profiles, 2 cores): 150k Redis commands and
    55 % of the rate before, ~110k (most of them the script's server-side EXISTS) and 78-80 % after.
    """

    _unclaimed: Any = None  # the script, registered at the first poll (arq opens its pool late)

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        if len(job_ids) > 1:
            if self._unclaimed is None:
                self._unclaimed = self.pool.register_script(_UNCLAIMED)
            job_ids = list(await self._unclaimed(args=[in_progress_key_prefix, *job_ids]))
        await super().start_jobs(job_ids)


def _arq_worker(options: WorkerOptions, functions: Mapping[str, JobFunction], ctx: dict[str, Any]) -> Worker:
    inner_s = max(1.0, options.job_timeout_s - JOB_DEADLINE_MARGIN_S)

    def wrap(name: str, job: JobFunction) -> Any:
        return _as_arq_job(name, job, inner_s, options.max_worker_deaths, options.lease_s)

    crons = [
        cron(
            wrap(name, job),
            name=name,
            second=set(range(0, 60, every_s)),
            unique=True,
        )
        for name, job, every_s in options.periodic
    ]
    worker = _ClaimingWorker(
        functions=[func(wrap(name, job), name=name) for name, job in functions.items()],
        cron_jobs=crons,
        queue_name=options.queue_name,
        redis_settings=_redis_settings(options.redis),
        ctx=ctx,
        burst=options.burst,
        max_jobs=options.concurrency,
        job_timeout=options.job_timeout_s,
        keep_result=0,  # results live in MongoDB; a kept result would also block re-enqueueing
        max_tries=ARQ_MAX_TRIES,
        job_completion_wait=options.drain_timeout_s,  # SIGTERM: stop taking jobs, drain, then stop
        poll_delay=options.poll_delay_s,
        health_check_interval=30,
        job_serializer=_dumps,
        job_deserializer=_loads,
        log_results=False,
        handle_signals=not options.burst,
    )
    # arq sets a job's in-progress key with a TTL of the job timeout + 10 s when it starts the job,
    # and another worker may start the job once that key is gone. A short TTL, kept alive by the
    # job's heartbeat (`_leased`), turns it into a lease: a dead worker's jobs go within seconds.
    # (arq 0.28 reads this attribute in `start_jobs`; tests/test_leases.py pins the behaviour.)
    worker.in_progress_timeout_s = options.lease_s
    return worker
