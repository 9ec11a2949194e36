"""Submitting a data request: `POST /v2/data_requests/employee_clean/{id_file,es_dsl}` (spec §8.1).

Both go through `admit` in the "bulk" class, then, in this order:
- 400 for bad input (id_file: not multipart, no `ids_file`, non-numeric content, no ids, more
  than 10,000 ids; es_dsl: not a JSON object, no query, a query the DSL rejects, a bad `limit`).
  Nothing is created and nothing is counted against a fingerprint;
- the POST is counted against its fingerprint (`/_sim/stats` → bulk.posts_by_fingerprint);
- 409 if a request with the same fingerprint is still processing;
- 404 if no id exists / nothing matches;
- 402 if the balance cannot pay one credit per record that will be delivered;
- 201 `{"request_id": uuid}` with `Location: /v2/data_requests/<id>/files`, credits charged now.

An es_dsl request matching more than 10,000 profiles (after `limit`) is accepted and then fails
with 422 at `GET .../files` (§8.1). GUESS: it is billed at POST like any other, capped at 10,000
credits, which is what makes counting first worth a client's while.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField

from simulator.admission import INSUFFICIENT_CREDITS, admit
from simulator.bulk_store import (
    BULK,
    IN_PROGRESS,
    MATCHED_TOO_MANY,
    MAX_IDS_PER_REQUEST,
    SECONDS_PER_DAY,
    TOO_MANY_IDS,
    BulkRegistry,
    es_dsl_fingerprint,
    id_file_fingerprint,
)
from simulator.dsl import QueryError, check_limits, compile_body
from simulator.responses import json_error, json_response
from simulator.search import scan
from simulator.state import STATE, SimulatorState

NO_MATCHING_IDS = "No matching ids found"
_SEPARATORS = re.compile(r"[\s,;]+")


@dataclass(frozen=True, slots=True)
class Submission:
    kind: str
    fingerprint: str
    ids: list[int]  # what will be delivered (existing ids), or every match when `error` is set
    error: str | None = None
    webhook_url: str | None = None


def bulk_now(state: SimulatorState, registry: BulkRegistry) -> float:
    """The bulk clock: the simulator's clock moved on by the world clock (`POST /_sim/advance`)."""
    return state.clock() + state.world_clock.offset_s


async def submit_id_file(request: web.Request) -> web.Response:
    state = request.app[STATE]
    refusal = await admit(state, request, "bulk", 0)
    if refusal is not None:
        return refusal
    try:
        submission = await _read_id_file(request, state)
    except QueryError as exc:
        return json_error(exc.status, exc.reason)
    return _create(request, state, submission)


async def submit_es_dsl(request: web.Request) -> web.Response:
    state = request.app[STATE]
    refusal = await admit(state, request, "bulk", 0)
    if refusal is not None:
        return refusal
    try:
        submission = await _read_es_dsl(request, state)
    except QueryError as exc:
        return json_error(exc.status, exc.reason)
    return _create(request, state, submission)


def _create(request: web.Request, state: SimulatorState, submission: Submission) -> web.Response:
    registry = request.app[BULK]
    registry.posts_by_fingerprint[submission.fingerprint] += 1
    now_s = bulk_now(state, registry)
    if registry.in_flight(submission.fingerprint, now_s) is not None:
        return json_error(409, IN_PROGRESS)
    if not submission.ids:
        return json_error(404, NO_MATCHING_IDS)
    records = min(len(submission.ids), MAX_IDS_PER_REQUEST)
    if not state.charge(records):
        return json_error(402, INSUFFICIENT_CREDITS)
    config = state.config
    created = registry.create(
        kind=submission.kind,
        fingerprint=submission.fingerprint,
        ids=[] if submission.error else submission.ids,
        now_s=now_s,
        processing_s=config.bulk_base_delay_s + records * config.bulk_per_record_s,
        expiry_s=config.bulk_expiry_days * SECONDS_PER_DAY,
        records_per_file=config.bulk_file_records,
        error=submission.error,
        webhook_url=submission.webhook_url,
    )
    location = f"/v2/data_requests/{created.request_id}/files"
    return json_response({"request_id": created.request_id}, status=201, headers={"Location": location})


async def _read_id_file(request: web.Request, state: SimulatorState) -> Submission:
    if not request.content_type.startswith("multipart/"):
        raise QueryError(400, "expected multipart/form-data with an ids_file field")
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        # Past aiohttp's 1 MiB body limit: far more than 10,000 ids, the same answer.
        raise QueryError(400, TOO_MANY_IDS) from None
    except (ValueError, web.HTTPException):
        raise QueryError(400, "request body is not valid multipart/form-data") from None
    field = form.get("ids_file")
    if field is None:
        raise QueryError(400, "ids_file is required")
    text = _field_text(field)
    tokens = [token for token in _SEPARATORS.split(text) if token]
    if not tokens:
        raise QueryError(400, "file contains no ids")
    if not all(token.isascii() and token.isdigit() for token in tokens):
        raise QueryError(400, "file must contain numeric ids only")
    if len(tokens) > MAX_IDS_PER_REQUEST:
        raise QueryError(400, TOO_MANY_IDS)
    ids = {int(token) for token in tokens}
    webhook_url = form.get("webhook_url")
    return Submission(
        kind="id_file",
        fingerprint=id_file_fingerprint(ids),
        ids=sorted(i for i in ids if state.population.exists(i)),
        webhook_url=webhook_url if isinstance(webhook_url, str) and webhook_url else None,
    )


def _field_text(field: str | bytes | bytearray | FileField) -> str:
    if isinstance(field, str):
        return field
    raw = field.file.read() if isinstance(field, FileField) else bytes(field)
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


async def _read_es_dsl(request: web.Request, state: SimulatorState) -> Submission:
    raw_text = (await request.read()).decode(request.charset or "utf-8", "replace")
    try:
        body = json.loads(raw_text)
    except ValueError:
        raise QueryError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise QueryError(400, "request body must be a JSON object")
    inner = body.get("es_dsl_query")
    if inner is not None and not isinstance(inner, dict):
        raise QueryError(400, "es_dsl_query must be an object")
    query = (inner or {}).get("query", body.get("query"))
    if query is None:
        raise QueryError(400, "es_dsl_query.query is required")
    limit = _limit(body.get("limit"))
    search_body: dict[str, Any] = {"query": query}
    check_limits(raw_text, search_body)
    compiled = compile_body(search_body)
    snapshot = state.population.snapshot()
    key = (_canonical(query), compiled.sort, snapshot.generation)
    ordered = await state.search_cache.matches(key, lambda: scan(snapshot, compiled))
    ids = [match[0] for match in ordered][:limit]
    webhook_url = body.get("webhook_url")
    return Submission(
        kind="es_dsl",
        fingerprint=es_dsl_fingerprint(query, limit),
        ids=ids,
        error=MATCHED_TOO_MANY if len(ids) > MAX_IDS_PER_REQUEST else None,
        webhook_url=webhook_url if isinstance(webhook_url, str) and webhook_url else None,
    )


def _limit(raw: object) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise QueryError(400, "limit must be a positive integer")
    return raw


def _canonical(query: object) -> str:
    return json.dumps(query, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
