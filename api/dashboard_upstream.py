"""The dashboard's panels for what we asked the upstream for: bulk data requests and subscriptions.

Both read MongoDB only (the ledger, `data_requests`, and `webhook_subscriptions`): one bounded page
newest first on an index holding that order (keyset cursor, as dead letters page), plus the ledger's
count per state (cached 10 s) or the subscriptions' count (a few dozen rows), so a refresh costs
the same with 10,000 rows as with ten. The page shows a panel only once its total is
above zero. A data request's own page (`/v1/dashboard/data-requests/{id}`) is what search opens for
a data request id.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from aiohttp import web

from api.dashboard_params import (
    CACHE,
    decode_position,
    encode_position,
    only_parameters,
    optional_run_id,
    page_limit,
)
from api.errors import ApiError, json_response
from api.state import SERVICES
from worker.run_model import DATA_REQUEST_FILES_KEPT, DataRequest, DataRequestState, utcnow
from worker.runtime import Services
from worker.store.base import Doc
from worker.store.ledger import DataRequestSummary, summary_of

PAGE_DEFAULT, PAGE_MAX = 20, 200
BY_STATE_CACHE_S = 10.0
# A ledger row's id: `<run id>:<sequence number, zero-padded to 5 digits>` (worker.store.ledger).
ROW_ID_PATTERN = "^[0-9a-f]{32}:[0-9]{5,9}$"
_ROW_ID = re.compile(ROW_ID_PATTERN)
# What an upstream data request id may look like when searched for (the API documents no format).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_READY_OR_LATER = frozenset({DataRequestState.READY, DataRequestState.DONE})


def add_upstream_routes(app: web.Application) -> None:
    app.router.add_get("/v1/dashboard/data-requests", data_requests)
    app.router.add_get("/v1/dashboard/data-requests/{id}", data_request)
    app.router.add_get("/v1/dashboard/subscriptions", subscriptions)


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def _age_s(now: datetime, at: datetime | None) -> float | None:
    return None if at is None else round((now - at).total_seconds(), 1)


# --- data requests ---------------------------------------------------------------------------


def _files_expire_at(state: DataRequestState, ready_at: datetime | None) -> datetime | None:
    """When the upstream stops serving the files (null until they are listed)."""
    if state not in _READY_OR_LATER or ready_at is None:
        return None
    return ready_at + DATA_REQUEST_FILES_KEPT


def _summary_json(row: DataRequestSummary, now: datetime) -> dict[str, Any]:
    expires = _files_expire_at(row.state, row.ready_at)
    return {
        "id": row.row_id,
        "run_id": row.run_id,
        "seq": row.seq,
        "kind": row.kind,
        "state": row.state.value,
        "request_id": row.request_id,
        "error": row.error,
        "created_at": _iso(row.created_at),
        "age_s": _age_s(now, row.created_at),
        "submitted_at": _iso(row.submitted_at),
        "ready_at": _iso(row.ready_at),
        "files_expire_at": _iso(expires),
        "files_expired": expires is not None and expires <= now,
        "polls": row.polls,
        "files_total": row.files_total,
        "files_done": row.files_done,
        "records_ingested": row.records_ingested,
        "bytes_downloaded": row.bytes_downloaded,
    }


async def data_requests(request: web.Request) -> web.Response:
    """One page of the ledger, newest first (optionally of one run), and the rows by state."""
    query = request.query
    only_parameters(query, ("run_id", "limit", "cursor"))
    services = request.app[SERVICES]
    run_id = optional_run_id(query.get("run_id"))
    limit = page_limit(query.get("limit"), PAGE_DEFAULT, PAGE_MAX)
    before = decode_position(query.get("cursor"))
    rows = await services.store.ledger.summaries(run_id=run_id, before=before, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    by_state: dict[str, int] = await request.app[CACHE].get(
        "data_requests_by_state", BY_STATE_CACHE_S, services.store.ledger.count_by_state
    )
    now = utcnow()
    return json_response(
        {
            "total": sum(by_state.values()),
            "by_state": by_state,
            "data_requests": [_summary_json(row, now) for row in page],
            "next_cursor": encode_position(page[-1].created_at, page[-1].row_id) if more and page else None,
        }
    )


def _files_json(row: DataRequest) -> list[dict[str, Any]]:
    done = set(row.files_done)
    return [
        {
            "index": index,
            "name": name,
            "done": index in done,
            "records_ingested": row.file_records.get(index, 0),
            "downloads": row.file_downloads.get(index, 0),
            "corrupt_downloads": row.file_corrupt.get(index, 0),
        }
        for index, name in enumerate(row.files)
    ]


async def data_request(request: web.Request) -> web.Response:
    """One data request: where it is, the run it belongs to, and each of its files."""
    only_parameters(request.query, ())
    row_id = request.match_info["id"]
    if not _ROW_ID.fullmatch(row_id):
        raise ApiError(400, "invalid_parameter", "a data request id is <run id>:<5-digit sequence number>")
    services = request.app[SERVICES]
    row = await services.store.ledger.get(row_id)
    if row is None:
        raise ApiError(404, "data_request_not_found", f"no data request {row_id}")
    run = await services.store.runs.get(row.run_id)
    body = _summary_json(summary_of(row), utcnow())
    body["fingerprint"] = row.fingerprint
    body["limit"] = row.limit
    body["download_errors"] = row.download_errors
    body["run_state"] = None if run is None else run.state.value
    body["files"] = _files_json(row)
    return json_response(body)


async def data_request_matches(services: Services, text: str) -> list[dict[str, Any]]:
    """Search: a ledger row id, or the upstream's data request id, names a data request."""
    if _ROW_ID.fullmatch(text):
        row = await services.store.ledger.get(text)
        rows = [] if row is None else [row]
    elif _REQUEST_ID.fullmatch(text):
        rows = await services.store.ledger.find_by_request_id(text)
    else:
        rows = []
    return [
        {"kind": "data_request", "id": row.row_id, "label": f"data request {row.request_id or row.row_id}"}
        for row in rows
    ]


# --- subscriptions ---------------------------------------------------------------------------


def _subscription_json(doc: Doc, now: datetime) -> dict[str, Any]:
    created, expiring = doc.get("created_at"), doc.get("expiring_at")
    last = doc.get("last_delivery_at")
    expired = isinstance(expiring, datetime) and expiring <= now
    return {
        "id": str(doc["_id"]),
        "type": doc.get("type"),
        "selection": doc.get("selection"),
        "status": "expired" if expired else doc.get("status"),
        "created_at": _iso(created),
        "age_s": _age_s(now, created),
        "expiring_at": _iso(expiring),
        "expires_in_s": None if expiring is None else round((expiring - now).total_seconds(), 1),
        "renewed_at": _iso(doc.get("renewed_at")),
        "last_delivery_at": _iso(last),
        "last_delivery_age_s": _age_s(now, last),
        "silent": _silent(doc, now),
    }


def _silent(doc: Doc, now: datetime) -> bool:
    """No delivery for longer than cadence + slack, counted as the `subscription_silent` metric is."""
    quiet_since = doc.get("last_delivery_at") or doc.get("created_at")
    silence_s = float(doc.get("silence_after_s") or 0)
    if not silence_s or not isinstance(quiet_since, datetime):
        return False
    return (now - quiet_since).total_seconds() > silence_s


async def subscriptions(request: web.Request) -> web.Response:
    """One page of the webhook subscriptions, newest first: state, selection, age, expiry, deliveries."""
    query = request.query
    only_parameters(query, ("limit", "cursor"))
    services = request.app[SERVICES]
    limit = page_limit(query.get("limit"), PAGE_DEFAULT, PAGE_MAX)
    before = decode_position(query.get("cursor"))
    docs = await services.store.webhooks.subscriptions_page(before=before, limit=limit + 1)
    page, more = docs[:limit], len(docs) > limit
    total = len(docs)  # the first page holds them all: that is the count, no second read
    if before is not None or more:
        total = await services.store.webhooks.count_subscriptions()  # a few dozen rows: not cached
    now = utcnow()
    last = page[-1] if more and page else None
    return json_response(
        {
            "total": total,
            "subscriptions": [_subscription_json(doc, now) for doc in page],
            "next_cursor": None if last is None else encode_position(last["created_at"], str(last["_id"])),
        }
    )
