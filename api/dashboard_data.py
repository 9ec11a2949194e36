"""The JSON behind the dashboard (`GET /ui`): fleet figures, dead letters, freshness, search, history
(data requests and subscriptions: `api.dashboard_upstream`).

Every endpoint needs the bearer token (the auth middleware), answers one bounded read, and is
documented in the OpenAPI document (`api.dashboard_openapi`). Runs and run control are the API's own
`/v1/runs` routes: the page uses them as any client would.

What a refresh costs: `/v1/dashboard/fleet` is one Redis round trip (the fleet figures, the credits
gate and the queue's two reads on one pipeline); the aggregates that need not be exact to the second
are cached (runs by state 5 s, dead-letter reasons 10 s, freshness 30 s), so 10,000 letters cost
one group-by per cache period, not one per viewer per refresh. `bench/dashboard.py` measures it.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from api.dashboard_params import (
    CACHE,
    TtlCache,
    decode_position,
    encode_position,
    only_parameters,
    optional_run_id,
    page_limit,
    runs_by_state,
)
from api.dashboard_upstream import add_upstream_routes, data_request_matches
from api.errors import ApiError, json_response
from api.jsonbody import read_json
from api.state import SERVICES, SETTINGS
from api.validation import invalid_body, invalid_parameter, parse_employee_id
from jobs.deadletter import requeue_dead_letters
from jobs.inputs import MAX_EMPLOYEE_ID
from jobs.runs import counter_fields
from worker import keys
from worker.fleet_view import read_fleet_with
from worker.run_model import utcnow
from worker.runtime import Services
from worker.store.dashboard import LetterFilter
from worker.store.deadletters import DeadLetter

REQUEUE_MAX = 10_000
LIVE_RUNS_MAX = 50
REASONS_CACHE_S = 10.0
FRESHNESS_CACHE_S = 30.0
CHANGES_SHOWN = 50
MAX_QUERY_CHARS = 200
_RUN_ID = re.compile(r"[0-9a-f]{32}")
_DIGITS = re.compile(r"[0-9]{1,19}")
_NAME = re.compile(r"[A-Za-z0-9%._~-]{1,100}")
_PROFILE_URL = re.compile(r"(?:https?://)?(?:[a-z]{2,3}\.)?linkedin\.com/in/([^/?#]+)/?", re.IGNORECASE)


def add_dashboard_routes(app: web.Application) -> None:
    app[CACHE] = TtlCache()
    app.router.add_get("/v1/dashboard/fleet", fleet)
    app.router.add_get("/v1/dashboard/live-runs", live_runs)
    app.router.add_get("/v1/dashboard/dead-letters", dead_letters)
    app.router.add_post("/v1/dashboard/dead-letters/requeue", requeue)
    app.router.add_get("/v1/dashboard/freshness", freshness)
    app.router.add_get("/v1/dashboard/search", search)
    app.router.add_get("/v1/employees/{id}/history", employee_history)
    add_upstream_routes(app)


# --- fleet -----------------------------------------------------------------------------------


async def fleet(request: web.Request) -> web.Response:
    """Rate vs limit per class, 429s and cool-downs, credits, queue, live workers, runs by state."""
    only_parameters(request.query, ())
    settings, services = request.app[SETTINGS], request.app[SERVICES]
    limits: dict[str, float] = {cls: settings.rate_per_s(cls) for cls in keys.ENDPOINT_CLASSES}
    queue_args: list[str | int] = []

    def credits_and_queue(pipe: Any) -> None:
        services.credits.queue_exhausted(pipe)
        queue_args.extend(services.queue.queue_figures(pipe, keys.JOB_QUEUE))

    fleet_view, (credits_reply, *queue_replies) = await read_fleet_with(
        services.redis, limits, credits_and_queue
    )
    depth, oldest_age_s = await services.queue.figures_of(queue_replies, keys.JOB_QUEUE, queue_args)
    view = fleet_view.as_dict()
    view["credits"]["exhausted"] = services.credits.exhausted_of(credits_reply)
    view["queue"] = {"depth": depth, "oldest_age_s": oldest_age_s, "window": settings.queue_window}
    by_state = await runs_by_state(request.app, services)
    view["runs_by_state"] = {state.value: count for state, count in by_state.items()}
    view["rate_safety_margin"] = settings.rate_safety_margin
    return json_response(view)


# --- live counters of the runs a page shows -----------------------------------------------------


async def live_runs(request: web.Request) -> web.Response:
    """The live counters (Redis only) of up to LIVE_RUNS_MAX runs: the page polls these every few
    seconds and reads the runs page itself (MongoDB) when a run changes state or every 30 s."""
    only_parameters(request.query, ("run_ids",))
    run_ids = _run_ids(request.query.get("run_ids"))
    services = request.app[SERVICES]
    lives = await services.progress.counts_many(run_ids)
    return json_response(
        {
            "runs": [
                {"run_id": run_id, **counter_fields(live)}
                for run_id, live in zip(run_ids, lives, strict=True)
                if live  # no counters in Redis: nothing live to show, the runs page has the rest
            ]
        }
    )


def _run_ids(text: str | None) -> list[str]:
    parts = [] if text is None else text.split(",")
    if not 1 <= len(parts) <= LIVE_RUNS_MAX or not all(_RUN_ID.fullmatch(p) for p in parts):
        raise invalid_parameter(
            f"run_ids must be 1 to {LIVE_RUNS_MAX} run ids (32 lower-case hex), comma-separated"
        )
    return list(dict.fromkeys(parts))


# --- dead letters ----------------------------------------------------------------------------


async def dead_letters(request: web.Request) -> web.Response:
    """One page of letters (newest first, optionally of one reason or run), their count, and the
    reasons with their counts (cached for REASONS_CACHE_S)."""
    query = request.query
    only_parameters(query, ("reason", "run_id", "limit", "cursor"))
    services = request.app[SERVICES]
    if query.get("reason") == "":
        raise invalid_parameter("reason must not be empty (leave it out for every reason)")
    where = LetterFilter(reason=query.get("reason"), run_id=optional_run_id(query.get("run_id")))
    limit = page_limit(query.get("limit"))
    before = decode_position(query.get("cursor"))
    letters = await services.store.dashboard.letters_page(where, before=before, limit=limit + 1)
    page, more = letters[:limit], len(letters) > limit
    reasons = await request.app[CACHE].get(
        "reasons", REASONS_CACHE_S, services.store.dashboard.letters_by_reason
    )
    total = await services.store.dashboard.count_letters(where)
    return json_response(
        {
            "total": total,
            "letters": [_letter(letter) for letter in page],
            "next_cursor": encode_position(page[-1].at, page[-1].letter_id) if more and page else None,
            "reasons": [{"reason": reason, "count": count} for reason, count in reasons],
        }
    )


def _letter(letter: DeadLetter) -> dict[str, Any]:
    data = letter.as_dict()
    data["id"] = data.pop("_id")
    return data


async def requeue(request: web.Request) -> web.Response:
    """Put letters back to work: all of one reason and/or run (at most REQUEUE_MAX per call)."""
    settings = request.app[SETTINGS]
    body = await read_json(request, settings.api_max_body_bytes)
    if not isinstance(body, dict) or not body or set(body) - {"reason", "run_id"}:
        raise invalid_body("send an object with reason and/or run_id (nothing else)")
    if any(value is None for value in body.values()):
        raise invalid_body("reason and run_id must not be null (leave a field out instead)")
    reason, run_id = body.get("reason"), body.get("run_id")
    if reason is not None and not (isinstance(reason, str) and reason):
        raise invalid_body("reason must be a non-empty string")
    if run_id is not None and not (isinstance(run_id, str) and _RUN_ID.fullmatch(run_id)):
        raise invalid_body("run_id must be 32 lower-case hex characters")
    services = request.app[SERVICES]
    requeued = await requeue_dead_letters(services, run_id=run_id, reason=reason, limit=REQUEUE_MAX)
    return json_response({"requeued": requeued})


# --- freshness -------------------------------------------------------------------------------

FRESHNESS_AGES_S = (3600, 86_400, 7 * 86_400, 30 * 86_400)  # the histogram's upper edges


async def freshness(request: web.Request) -> web.Response:
    """How stale the mirror is: live profiles per sync-age bucket and the share over max-age."""
    only_parameters(request.query, ())
    services, settings = request.app[SERVICES], request.app[SETTINGS]
    max_age_s = int(settings.freshness_ttl_s)
    ages = tuple(sorted({*FRESHNESS_AGES_S, max_age_s}))

    async def compute() -> dict[str, Any]:
        total, within = await services.store.dashboard.staleness(utcnow(), ages)
        return _freshness_body(total, ages, within, max_age_s)

    return json_response(await request.app[CACHE].get("freshness", FRESHNESS_CACHE_S, compute))


def _freshness_body(total: int, ages: tuple[int, ...], within: list[int], max_age_s: int) -> dict[str, Any]:
    buckets: list[dict[str, int | None]] = []
    previous = 0
    for age_s, count in zip(ages, within, strict=True):
        buckets.append({"le_s": age_s, "count": count - previous})
        previous = count
    buckets.append({"le_s": None, "count": total - previous})
    fresh = within[ages.index(max_age_s)]
    return {
        "available": total > 0,
        "total": total,
        "max_age_s": max_age_s,
        "buckets": buckets,
        "over_max_age": total - fresh,
        "over_max_age_share": round((total - fresh) / total, 4) if total else 0.0,
    }


# --- search and a profile's history ----------------------------------------------------------


async def search(request: web.Request) -> web.Response:
    """`q`: a run id, an employee id, a shorthand name, a profile URL or a data request id (the
    upstream's, or the ledger row's `<run id>:<seq>`); returns what it names."""
    only_parameters(request.query, ("q",))
    text = (request.query.get("q") or "").strip()
    if not text or len(text) > MAX_QUERY_CHARS:
        raise invalid_parameter(f"q must be 1 to {MAX_QUERY_CHARS} characters")
    return json_response({"q": text, "matches": await _matches(request.app[SERVICES], text)})


async def _matches(services: Services, text: str) -> list[dict[str, Any]]:
    lowered = text.lower()
    if _RUN_ID.fullmatch(lowered):
        run = await services.store.runs.get(lowered)
        return [] if run is None else [{"kind": "run", "id": run.run_id, "label": f"{run.kind} run"}]
    # The upstream documents no format for a data request id (the simulator's are UUIDs), so any
    # text may be one: digits may be an employee id too, a UUID a shorthand name, and both are asked.
    matches = await data_request_matches(services, text)
    if _DIGITS.fullmatch(text) and 1 <= int(text) <= MAX_EMPLOYEE_ID:
        doc = await services.store.employees.get(int(text))
        return matches if doc is None else [*matches, _employee_match(doc)]
    url = _PROFILE_URL.fullmatch(text)
    name = url.group(1) if url else text
    if not _NAME.fullmatch(name):
        return matches
    for employee_id in await services.store.dashboard.ids_by_shorthand_name(name):
        doc = await services.store.employees.get(employee_id)
        if doc is not None:
            matches.append(_employee_match(doc))
    return matches


def _employee_match(doc: dict[str, Any]) -> dict[str, Any]:
    profile = doc.get("profile") or {}
    label = str(profile.get("full_name") or profile.get("name") or f"employee {doc['_id']}")
    return {"kind": "employee", "id": doc["_id"], "label": label}


async def employee_history(request: web.Request) -> web.Response:
    """A profile's sync history: each collect (changed or not, by which run) and its change records."""
    employee_id = parse_employee_id(request.match_info["id"])
    services = request.app[SERVICES]
    doc = await services.store.employees.get(employee_id)
    if doc is None:
        raise ApiError(404, "employee_not_found", f"employee {employee_id} is not mirrored")
    events, collects = await services.store.history.of(employee_id)
    changes = (await services.store.employees.changes_of(employee_id))[-CHANGES_SHOWN:]
    profile = doc.get("profile") or {}
    return json_response(
        {
            "id": employee_id,
            "mirrored": True,
            "name": profile.get("full_name"),
            "shorthand_names": profile.get("shorthand_names") or [],
            "sync": doc.get("sync") or {},
            "collects_total": collects,
            "collects": events,
            "changes": [_change(c) for c in reversed(changes)],
        }
    )


def _change(doc: dict[str, Any]) -> dict[str, Any]:
    return {"at": doc.get("at"), "run_id": doc.get("run_id"), "fields": list(doc.get("fields") or [])}
