"""`bench freshness`: a simulated month in minutes, three ways of keeping a mirror fresh side by side.

    uv run python -m bench freshness [--profiles 600] [--week-s 30] [--weeks 4] [--plot FILE.png]

One simulator (one changing world, `world_change_share_per_week` 5 %), one Mongo-wire server, and
per strategy its own API key (the simulator counts requests per key), Redis database and MongoDB
database, with an in-process worker (which runs the sync scheduler). Every mirror starts full and
current; then the world clock moves one day every `week_s / 7` seconds for `weeks` weeks:

  (a) naive:  re-collect every profile at the end of every week (an id run of everything)
  (b) sweep:  an id sync, max-age 7 days, every 6 h, re-collecting due members (--no-sweep-check)
  (c) ours:   a query sync (match_all) with `webhooks`, max-age 7 days, every 6 h: the delta by
              last_updated, the sweep that first asks which due members changed, and the sync's
              es_dsl subscription, whose weekly notices the simulator POSTs to our API (the
              production `api.app.serve`, in this process on a free loopback port, at
              WEBHOOK_PUBLIC_BASE_URL) and the lane's worker refreshes.

Per strategy: collect and search requests during the month, collect credits per change the world
made, the webhook notices the lane received (and how many of those the webhook path collected),
staleness of changes (the simulator's wall time of a change -> the first fetch that brought
it into that mirror), in simulated days, and the share of profiles ever older than max-age
(age = now - the later of synced_at and verified_at, sampled every 2 s). `--plot` draws that
sample over the month: the share of each mirror older than max-age, per strategy (bench.plots).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import redis as sync_redis

from api.app import serve
from bench.plots import Panel, Series, draw
from cli.wiring import run_fleet_worker
from config import Settings
from devstack import processes as svc
from jobs.inputs import read_lines
from jobs.producers import enqueue_lines
from jobs.runs import RunState, get_status
from jobs.syncs import SyncRequest, create_sync
from simulator.app import RunningSimulator, start
from simulator.config import SimulatorConfig
from simulator.population import Population
from worker.run_model import RunKind
from worker.runtime import Services
from worker.sync_model import SyncSource

STRATEGIES = ("naive", "sweep", "ours")
_LEASE = "es-test-suite:db:{}"  # the test suite's claim on a Redis database: benches honour it too
_API_TOKEN = f"bench-fresh-{uuid.uuid4().hex}"  # our API keeps auth on; the receiver uses its own URLs


@dataclass
class Lane:
    name: str
    api_key: str
    settings: Settings
    services: Services | None = None
    worker: asyncio.Task[None] | None = None
    ever_over: set[int] = field(default_factory=set)
    over_share: list[tuple[float, float]] = field(default_factory=list)  # (wall time, share over max-age)
    base: dict[str, int] = field(default_factory=dict)
    sync: str | None = None
    api: asyncio.Task[None] | None = None  # our API (the webhook receiver), lane (c) only


def _claim_dbs(count: int) -> list[int]:
    client = sync_redis.Redis.from_url("redis://127.0.0.1:6379/0")
    claimed = [
        db for db in range(1, 16) if client.set(_LEASE.format(db), "bench-freshness", nx=True, ex=3600)
    ]
    for db in claimed[count:]:
        client.delete(_LEASE.format(db))
    client.close()
    if len(claimed) < count:
        raise SystemExit(f"needs {count} free Redis databases; got {claimed}")
    return claimed[:count]


def _release_dbs(dbs: list[int]) -> None:
    client = sync_redis.Redis.from_url("redis://127.0.0.1:6379/0")
    for db in dbs:
        if client.get(_LEASE.format(db)) == b"bench-freshness":
            client.delete(_LEASE.format(db))
    client.close()


def _settings(
    api_key: str, sim: RunningSimulator, db: int, mongo_url: str, day_s: float, receiver_port: int | None
) -> Settings:
    # Lane (c) alone serves a receiver: the subscriptions its sync makes name this base URL.
    receiver: dict[str, Any] = (
        {}
        if receiver_port is None
        else {"webhook_public_base_url": f"http://127.0.0.1:{receiver_port}", "api_tokens": _API_TOKEN}
    )
    return Settings.model_validate(
        {
            **receiver,
            "coresignal_api_key": api_key,
            "coresignal_base_url": sim.base_url,
            "redis_url": f"redis://127.0.0.1:6379/{db}",
            "mongodb_url": mongo_url,
            "mongodb_database": f"bench_fresh_{uuid.uuid4().hex[:8]}",
            "collect_rps": 100,
            "search_rps": 50,
            "sync_tick_s": 0.5,
            "sync_lease_ttl_s": 3,
            "sync_budget_period_s": day_s,
            "log_level": "WARNING",
            "log_json": True,
        }
    )


async def _sim(sim: RunningSimulator, method: str, path: str, body: object = None) -> Any:
    url = f"http://{sim.host}:{sim.port}/_sim/{path}"
    async with aiohttp.ClientSession() as session, session.request(method, url, json=body) as resp:
        resp.raise_for_status()
        return await resp.json()


async def _requests(sim: RunningSimulator, api_key: str) -> dict[str, int]:
    stats = (await _sim(sim, "GET", "stats"))["keys"].get(
        hashlib.sha256(api_key.encode()).hexdigest()[:12], {}
    )
    return {cls: int((stats.get(cls) or {}).get("accepted", 0)) for cls in ("collect", "search")}


async def _run_ids(services: Services, ids: list[int], *, timeout_s: float = 300) -> None:
    text = "\n".join(map(str, ids)).encode()
    receipt = await enqueue_lines(services, read_lines(io.BytesIO(text)), "ids", source="bench")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = await get_status(services, receipt.run_id)
        if status is not None and status.state is RunState.FINISHED:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("an id run did not finish in time")


async def _sample(lanes: list[Lane], ids: list[int], max_age_s: float, stop: asyncio.Event) -> None:
    """Every 2 s: which profiles of each mirror are older than max-age right now (max-age is 7
    simulated days, 30 s by default; sampling more often loads the Mongo-wire server the lanes share)."""
    while not stop.is_set():
        now = time.time()
        for lane in lanes:
            assert lane.services is not None
            store = lane.services.store
            synced = await store.employees.sync_times(ids)
            verified = await store.syncs.verified_times(lane.sync) if lane.sync else {}
            over = 0
            for i in ids:
                fresh = max(synced[i], verified.get(i, synced[i])) if i in synced else None
                if fresh is None or now - fresh.timestamp() > max_age_s:
                    lane.ever_over.add(i)
                    over += 1
            lane.over_share.append((now, over / len(ids)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 2.0)


async def _staleness_days(
    lane: Lane, changes: list[dict[str, Any]], end_s: float, day_s: float
) -> tuple[list[float], int]:
    """Per change: days from its wall time to the first fetch of a changed profile after it."""
    assert lane.services is not None
    fetched: dict[int, list[float]] = {}
    for change in changes:
        employee_id = int(change["id"])
        if employee_id not in fetched:
            records = await lane.services.store.employees.changes_of(employee_id)
            fetched[employee_id] = sorted(r["at"].timestamp() for r in records)
    delays, missing = [], 0
    for change in changes:
        after = [t for t in fetched[int(change["id"])] if t >= float(change["wall_ts"]) - 0.05]
        if after:
            delays.append(max(0.0, after[0] - float(change["wall_ts"])) / day_s)
        else:
            missing += 1
            delays.append((end_s - float(change["wall_ts"])) / day_s)
    return delays, missing


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _start_receiver(lane: Lane) -> None:
    """Our API, as `employee-sync api` serves it, on the lane's WEBHOOK_PUBLIC_BASE_URL."""
    base = lane.settings.webhook_public_base_url
    assert base is not None
    port = int(base.rsplit(":", 1)[1])
    lane.api = asyncio.create_task(serve(lane.settings, "127.0.0.1", port, insecure=False))
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while True:
            if lane.api.done():
                lane.api.result()  # raises what stopped it
                raise RuntimeError("the API stopped before it listened")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{base}/healthz") as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not answer /healthz in time")
            await asyncio.sleep(0.1)


async def _start_lane(lane: Lane, ids: list[int]) -> None:
    lane.services = await Services.open(lane.settings)
    await lane.services.redis.flushdb()
    if lane.settings.webhook_public_base_url is not None:
        await _start_receiver(lane)
    lane.worker = asyncio.create_task(run_fleet_worker(lane.settings))
    await _run_ids(lane.services, ids)  # every mirror starts full and current (not counted)


async def _make_syncs(lanes: dict[str, Lane], ids: list[int], week_s: float, every_s: float) -> None:
    sweep, ours = lanes["sweep"], lanes["ours"]
    assert sweep.services is not None and ours.services is not None
    lines = list(enumerate(map(str, ids), start=1))
    common: dict[str, Any] = {"max_age": week_s, "every": every_s}
    await create_sync(
        sweep.services,
        SyncRequest(name="sweep", source=SyncSource.IDS, lines=lines, sweep_check=False, **common),
    )
    query = json.dumps({"query": {"match_all": {}}})
    await create_sync(
        ours.services,
        SyncRequest(name="ours", source=SyncSource.QUERY, query_text=query, webhooks=True, **common),
    )
    sweep.sync, ours.sync = "sweep", "ours"
    deadline = time.monotonic() + 60
    while (await ours.services.store.syncs.get("ours")).watermark is None:  # type: ignore[union-attr]
        if time.monotonic() > deadline:
            raise RuntimeError("the query sync's first tick did not set a watermark")
        await asyncio.sleep(0.2)
    # The first tick subscribed the query; without it the month would measure no webhooks at all.
    subscriptions = await ours.services.store.webhooks.subscriptions_of_sync("ours")
    if not subscriptions:
        error = (await ours.services.store.syncs.get("ours")).webhook_error  # type: ignore[union-attr]
        raise RuntimeError(f"the webhooks sync made no subscription: {error}")


async def run_month(
    profiles: int, week_s: float, weeks: int, every_h: float
) -> tuple[list[dict[str, Any]], list[Lane], float]:
    """The rows, the lanes (their samples) and the wall time the simulated month started."""
    day_s = week_s / 7
    keys = {name: f"bench-{name}-key-0123456789abcdef" for name in STRATEGIES}
    sim = await start(
        SimulatorConfig.model_validate(
            {
                "api_keys": list(keys.values()),
                "population": profiles,
                "collect_rps": 400,
                "search_rps": 100,
                "webhook_cadence_days": 7,  # one batch a simulated week, as the API sends them
                "subscriptions_per_minute": 1000,  # the bench's one subscription is never throttled
            }
        )
    )
    port, receiver_port, dbs = svc.free_port(), svc.free_port(), _claim_dbs(len(STRATEGIES))
    mongo = svc.start_mongo_wire(port)
    ids = [Population.id_at(i) for i in range(profiles)]
    mongo_url = f"mongodb://127.0.0.1:{port}"
    lanes = {
        name: Lane(
            name,
            keys[name],
            _settings(keys[name], sim, db, mongo_url, day_s, receiver_port if name == "ours" else None),
        )
        for name, db in zip(STRATEGIES, dbs, strict=True)
    }
    try:
        await asyncio.gather(*(_start_lane(lane, ids) for lane in lanes.values()))
        await _make_syncs(lanes, ids, week_s, day_s * every_h / 24)
        for lane in lanes.values():
            lane.base = await _requests(sim, lane.api_key)
        stop = asyncio.Event()
        sampler = asyncio.create_task(_sample(list(lanes.values()), ids, week_s, stop))
        started, started_wall, naive_runs = time.monotonic(), time.time(), []
        for day in range(1, weeks * 7 + 1):
            await asyncio.sleep(max(0.0, started + day * day_s - time.monotonic()))
            await _sim(sim, "POST", "advance", {"days": 1})
            if day % 7 == 0:
                assert lanes["naive"].services is not None
                naive_runs.append(asyncio.create_task(_run_ids(lanes["naive"].services, ids)))
        await asyncio.sleep(day_s)  # one more day for the last changes to land
        for task in naive_runs:
            task.cancel()
        stop.set()
        await sampler
        end_s = time.time()
        world = await _sim(sim, "GET", "world?limit=100000")  # the world changed only during the month
        changes = [c for c in world["changes"] if c.get("source") == "world"]
        rows = [await _row(lane, sim, changes, end_s, day_s, profiles) for lane in lanes.values()]
        return rows, list(lanes.values()), started_wall
    finally:
        for lane in lanes.values():
            for running in (lane.worker, lane.api):
                if running is not None:
                    running.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await running
            if lane.services is not None:
                with contextlib.suppress(Exception):
                    await lane.services.redis.flushdb()
                    await lane.services.store.drop_database()
                await lane.services.close()
        await sim.close()
        svc.stop(mongo)
        _release_dbs(dbs)


async def _row(
    lane: Lane,
    sim: RunningSimulator,
    changes: list[dict[str, Any]],
    end_s: float,
    day_s: float,
    profiles: int,
) -> dict[str, Any]:
    now = await _requests(sim, lane.api_key)
    collects, searches = now["collect"] - lane.base["collect"], now["search"] - lane.base["search"]
    delays, missing = await _staleness_days(lane, changes, end_s, day_s)
    assert lane.services is not None
    _, notices = await lane.services.store.webhooks.received_notices()
    return {
        "strategy": lane.name,
        "collect": collects,
        "search": searches,
        "changes": len(changes),
        "changed_profiles": len({c["id"] for c in changes}),
        "collect_per_change": collects / len(changes) if changes else float("nan"),
        "p50_days": statistics.median(delays) if delays else 0.0,
        "p95_days": _pct(delays, 0.95),
        "never_seen": missing,
        "ever_over_share": len(lane.ever_over) / profiles,
        "notices": notices,
        "notice_collects": await _notice_collects(lane.services),
    }


async def _notice_collects(services: Services) -> int:
    """Ids the webhook path sent to be collected (its refresh runs' accepted items)."""
    runs = await services.store.runs.list_runs(state=None, before=None, limit=10_000)
    return sum(r.accepted for r in runs if r.kind is RunKind.WEBHOOK or r.source.startswith("webhook:"))


_LABELS = {
    "naive": "(a) naive: everything every week",
    "sweep": "(b) sweep only, max-age 7 d",
    "ours": "(c) ours: delta + checked sweep + webhooks",
}


def print_table(rows: list[dict[str, Any]], profiles: int, week_s: float, weeks: int) -> None:
    print(f"{profiles} profiles, {weeks} simulated weeks (a week = {week_s:g} s), world changes 5 %/week")
    print(
        "| strategy | collect credits | search credits | changes | collect credits per change "
        "| webhook notices (collected) | staleness of changes p50 / p95 (days) | profiles ever over max-age |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        unseen = f" ({r['never_seen']} never seen)" if r["never_seen"] else ""
        print(
            f"| {_LABELS[r['strategy']]} | {r['collect']:,} | {r['search']:,} | {r['changes']} "
            f"| {r['collect_per_change']:.2f} | {r['notices']} ({r['notice_collects']}) "
            f"| {r['p50_days']:.2f} / {r['p95_days']:.2f}{unseen} "
            f"| {100 * r['ever_over_share']:.1f} % |"
        )


def plot(lanes: list[Lane], started_wall: float, day_s: float, path: str) -> None:
    panel = Panel(
        title="share of the mirror older than max-age (7 simulated days), sampled every 2 s",
        series=[
            Series(_LABELS[lane.name], [(t - started_wall) / day_s for t, _ in lane.over_share],
                   [100 * share for _, share in lane.over_share])
            for lane in lanes
        ],
        xlabel="simulated days",
        ylabel="% of profiles over max-age",
    )  # fmt: skip
    draw([panel], path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench freshness", description=__doc__)
    parser.add_argument("--profiles", type=int, default=600)
    parser.add_argument("--week-s", type=float, default=30.0, help="wall seconds per simulated week")
    parser.add_argument("--weeks", type=int, default=4)
    parser.add_argument("--every-h", type=float, default=6.0, help="the syncs' --every, in simulated hours")
    parser.add_argument("--plot", metavar="FILE.png")
    args = parser.parse_args(argv)
    if not 100 <= args.profiles <= 2000:
        parser.error("--profiles: 100..2000 (the Mongo-wire server slows down beyond that)")
    with svc.redis_available("redis://127.0.0.1:6379/0"):
        rows, lanes, started_wall = asyncio.run(
            run_month(args.profiles, args.week_s, args.weeks, args.every_h)
        )
    print_table(rows, args.profiles, args.week_s, args.weeks)
    if args.plot:
        plot(lanes, started_wall, args.week_s / 7, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    window_days = Settings.model_fields["webhook_fresh_window_s"].default / (args.week_s / 7)
    print(
        f"syncs: max-age 7 d, every {args.every_h:g} h; (c) subscribes its query (es_dsl, experience "
        "notices, a batch every 7 simulated days) and our API in this process receives them; "
        f"WEBHOOK_FRESH_WINDOW_S is the default 60 s wall = {window_days:.1f} simulated days"
    )
    return 0
