"""Control endpoints of the changing world (`simulator.world`); like `simulator.admin`, no auth.

POST /_sim/advance  {"days": N, "seconds": S, "wait": true}
        Moves the world clock N days plus S seconds (either may be left out; non-negative
        numbers, fractions allowed, together at most 3660 days; other keys are a 400), runs every
        day round passed on the way (each changes its share of the population) and delivers the
        webhook batches that fell due (one per `webhook_cadence_days` rounds; advancing 7 days
        from a fresh world is exactly one weekly batch holding all 7 days of changes).
        200 {"now", "clock_offset_s", "days_done", "changes": [record...], "rounds": [round...]}
        (clock_offset_s: the clock's whole offset in seconds, `SimClock.offset_s`). With "wait":
        false it answers before delivering ("rounds": []) and delivers in the background.
POST /_sim/mutate   {"ids": [int, ...], "kind": "role_started"|"role_ended"|"role_changed"|
                     "other", "deliver": true, "wait": true}
        Changes those ids now (default kind role_started; role_ended on someone with no open
        role starts one instead: each record says what was applied). With "deliver" (default)
        everything pending is delivered at once as one batch; false leaves it for the next
        scheduled batch. 404 {"detail", "unknown_ids"} and nothing changed if an id is absent.
        200 {"now", "changes": [record...], "rounds": [round...]}
POST /_sim/deliver  {"wait": true}: delivers everything pending now. 200 {"rounds": [...]}
GET  /_sim/world?since=<ISO time>&limit=<n>
        200 {"now", "epoch", "offset_s", "days_done", "share_per_week", "cadence_days",
             "changes_total", "pending", "changes": [record...]} (oldest first; `since` filters
             on the world time a change became visible)

A record: {"id", "kind", "at" (world time, ISO), "wall_ts" (unix seconds, real clock: staleness
is "mirror time minus wall_ts"), "last_updated", "changed_fields", "source": "world"|"admin"}.
A round: {"at", "changes", "subscriptions_notified", "notices", "posts", "failed_posts"}.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from simulator.mutations import CHANGE_KINDS, ChangeKind
from simulator.responses import json_error, json_response
from simulator.state import STATE, SimulatorState
from simulator.world import Batch, daily_picks

MAX_ADVANCE_DAYS = 3660
# At most this much profile building between two turns of the event loop (a change costs
# one or two profile builds, about a millisecond each).
YIELD_EVERY_S = 0.002
# One world operation at a time: an advance must not interleave its day rounds with another's.
WORLD_LOCK = web.AppKey("simulator_world_lock", asyncio.Lock)


class BadRequest(Exception):
    pass


async def advance(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await _body(request)
        delta = _delta(body)
        wait = _flag(body, "wait")
    except BadRequest as exc:
        return json_error(400, str(exc))
    async with request.app[WORLD_LOCK]:
        seen = len(state.world.history)
        state.world_clock.advance(delta)
        # Cached search results are keyed by population generation, not time: "now-7d" must move on.
        state.search_cache.clear()
        batches = await _catch_up(state)
    rounds = await _deliver(state, batches, wait)
    return json_response(
        {
            "now": state.world_clock.now().isoformat(),
            "clock_offset_s": state.world_clock.offset_s,
            "days_done": state.world.days_done,
            "changes": [record.to_json() for record in state.world.history[seen:]],
            "rounds": rounds,
        }
    )


async def mutate(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        body = await _body(request)
        ids = _ids(body.get("ids"))
        kind = _kind(body.get("kind", "role_started"))
        deliver, wait = _flag(body, "deliver"), _flag(body, "wait")
    except BadRequest as exc:
        return json_error(400, str(exc))
    unknown = [i for i in ids if not state.population.exists(i)]
    if unknown:
        return json_response({"detail": "unknown employee ids", "unknown_ids": unknown}, status=404)
    async with request.app[WORLD_LOCK]:
        batches = await _catch_up(state)  # rounds the clock has passed
        now = state.world_clock.now()
        records, breather = [], Breather()
        for employee_id in ids:
            record = state.world.change(state.population, employee_id, kind, now, "admin")
            assert record is not None
            records.append(record.to_json())
            await breather.breathe()
        if deliver:
            batches.append(state.world.flush(now))
    rounds = await _deliver(state, batches, wait)
    return json_response({"now": now.isoformat(), "changes": records, "rounds": rounds})


async def deliver_now(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        wait = _flag(await _body(request), "wait")
    except BadRequest as exc:
        return json_error(400, str(exc))
    async with request.app[WORLD_LOCK]:
        batches = await _catch_up(state)
        batches.append(state.world.flush(state.world_clock.now()))
    return json_response({"rounds": await _deliver(state, batches, wait)})


async def world(request: web.Request) -> web.Response:
    state = request.app[STATE]
    since: datetime | None = None
    if "since" in request.query:
        try:
            since = datetime.fromisoformat(request.query["since"])
        except ValueError:
            return json_error(400, "'since' must be an ISO 8601 time")
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
    limit_raw = request.query.get("limit")
    if limit_raw is not None and not limit_raw.isdigit():
        return json_error(400, "'limit' must be a non-negative integer")
    records = [record.to_json() for record in state.world.records_since(since)]
    if limit_raw is not None:
        records = records[: int(limit_raw)]
    world_ = state.world
    return json_response(
        {
            "now": state.world_clock.now().isoformat(),
            "epoch": world_.epoch.isoformat(),
            "offset_s": state.world_clock.offset.total_seconds(),
            "days_done": world_.days_done,
            "share_per_week": state.config.world_change_share_per_week,
            "cadence_days": state.config.webhook_cadence_days,
            "changes_total": len(world_.history),
            "pending": len(world_.pending),
            "changes": records,
        }
    )


async def _catch_up(state: SimulatorState) -> list[Batch]:
    """`World.catch_up` in small steps: a profile change costs about a millisecond of CPU, and
    the event loop must keep stamping arrivals for the rate limiter while a week is applied."""
    world, batches, breather = state.world, [], Breather()
    for day in world.due_days():
        for employee_id, kind in daily_picks(state.population, state.config, day):
            world.change(state.population, employee_id, kind, world.day_time(day), "world")
            await breather.breathe()
        batch = world.end_day(day, state.config)
        if batch is not None:
            batches.append(batch)
    return batches


class Breather:
    """Yields to the event loop once `YIELD_EVERY_S` of work has passed since the last time."""

    def __init__(self) -> None:
        self._since = time.perf_counter()

    async def breathe(self) -> None:
        if time.perf_counter() - self._since >= YIELD_EVERY_S:
            await asyncio.sleep(0)
            self._since = time.perf_counter()


async def _deliver(state: SimulatorState, batches: Sequence[Batch], wait: bool) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        results = []
        for batch in batches:
            result = await state.notifier.deliver(batch, state.subscriptions, state.population, state.config)
            results.append(result.to_json())
        return results

    if wait:
        return await run()
    state.notifier.spawn(run())
    return []


async def _body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except ValueError:
        raise BadRequest("body must be a JSON object") from None
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, True)
    if not isinstance(value, bool):
        raise BadRequest(f"'{name}' must be true or false")
    return value


def _delta(body: dict[str, Any]) -> timedelta:
    if not body or not set(body) <= {"days", "seconds", "wait"} or not set(body) & {"days", "seconds"}:
        raise BadRequest('body must be {"days": N} and/or {"seconds": N} (and optionally "wait")')
    values = [body.get("days", 0), body.get("seconds", 0)]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 for v in values):
        raise BadRequest("days and seconds must be non-negative numbers")
    delta = timedelta(days=values[0], seconds=values[1])
    if delta > timedelta(days=MAX_ADVANCE_DAYS):
        raise BadRequest(f"at most {MAX_ADVANCE_DAYS} days at once")
    return delta


def _kind(raw: object) -> ChangeKind:
    for kind in CHANGE_KINDS:
        if raw == kind:
            return kind
    raise BadRequest(f"'kind' must be one of {', '.join(CHANGE_KINDS)}")


def _ids(raw: object) -> list[int]:
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'ids' must be a non-empty list of employee ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in raw):
        raise BadRequest("'ids' must hold integers only")
    return list(dict.fromkeys(raw))


def add_routes(app: web.Application) -> None:
    app[WORLD_LOCK] = asyncio.Lock()
    app.router.add_post("/_sim/advance", advance)
    app.router.add_post("/_sim/mutate", mutate)
    app.router.add_post("/_sim/deliver", deliver_now)
    app.router.add_get("/_sim/world", world, allow_head=False)
