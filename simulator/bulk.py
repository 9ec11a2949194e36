"""Bulk collect: data requests, their file lists and file downloads (spec §8, §10.1 item 6).

POST /cdapi/v2/data_requests/employee_clean/id_file       `simulator.bulk_submit` (multipart)
POST /cdapi/v2/data_requests/employee_clean/es_dsl        `simulator.bulk_submit` (JSON)
GET  /cdapi/v2/data_requests/{id}/files                   202 {"data_request_files": []} while
     processing; 200 {"data_request_files": ["json/part-00000-<uuid>-c000.json.gz", ...]};
     422 {"detail": "request matched too many ids ..."}; 404 unknown or expired (30 days)
GET  /cdapi/v2/data_requests/{id}/files/{file_name}       200 the gzip file, streamed
     (application/octet-stream); 404 unknown/expired request, unknown file, or not ready yet;
     422 for a failed request; 503 when the "5xx" download fault is drawn
POST /_sim/advance (simulator.world_admin)                moves the world clock, which bulk reads too

Every API route is in the "bulk" rate class (27 rps by default) and passes through `admit`, so
401/429 and the generic injected faults apply as everywhere. Only the POST is billed.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from simulator.admission import ADMISSION, NOT_FOUND, admit, new_correlation_id
from simulator.bulk_files import BATCH_RECORDS, draw_download_fault, file_chunks, pause_for_slow
from simulator.bulk_store import BULK, BulkRegistry, DataRequest
from simulator.bulk_submit import bulk_now, submit_es_dsl, submit_id_file
from simulator.responses import json_error, json_response
from simulator.state import STATE, SimulatorState

SUBMIT_PREFIX = "/cdapi/v2/data_requests/employee_clean"
FILES_ROUTE = "/cdapi/v2/data_requests/{request_id}/files"
UNAVAILABLE = "Service temporarily unavailable"


def _live_request(request: web.Request) -> DataRequest | None:
    """The data request named in the path, None if unknown or expired."""
    state = request.app[STATE]
    registry = request.app[BULK]
    found = registry.requests.get(request.match_info["request_id"])
    if found is None or found.expired(bulk_now(state, registry)):
        return None
    return found


async def list_files(request: web.Request) -> web.Response:
    state = request.app[STATE]
    refusal = await admit(state, request, "bulk", 0)
    if refusal is not None:
        return refusal
    data_request = _live_request(request)
    if data_request is None:
        return json_error(404, NOT_FOUND)
    if data_request.in_flight(bulk_now(state, request.app[BULK])):
        return json_response({"data_request_files": []}, status=202)
    if data_request.error is not None:
        return json_error(422, data_request.error)
    return json_response({"data_request_files": data_request.file_names})


async def download_file(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    refusal = await admit(state, request, "bulk", 0)
    if refusal is not None:
        return refusal
    data_request = _live_request(request)
    if data_request is None or data_request.in_flight(bulk_now(state, request.app[BULK])):
        return json_error(404, NOT_FOUND)
    if data_request.error is not None:
        return json_error(422, data_request.error)
    file_name = request.match_info["file_name"]
    ids = data_request.file_ids(file_name, state.config.bulk_file_records)
    if ids is None:
        return json_error(404, NOT_FOUND)
    file_key = f"{data_request.request_id}/{file_name}"
    request.app[BULK].downloads_by_file[file_key] += 1
    fault = draw_download_fault(state.config, state.rng.random())
    if fault == "5xx":
        return json_error(503, UNAVAILABLE)
    return await _stream(request, state, ids, fault, file_key)


async def _stream(
    request: web.Request, state: SimulatorState, ids: list[int], fault: str | None, file_key: str
) -> web.StreamResponse:
    config = state.config
    response = web.StreamResponse(headers=_api_headers(state, request))
    response.content_type = "application/octet-stream"
    if config.bulk_content_encoding_gzip:
        response.headers["Content-Encoding"] = "gzip"
    await response.prepare(request)
    # A reset comes half way through (in batches); a file too small for that loses its end.
    reset_after = max(1, -(-len(ids) // BATCH_RECORDS) // 2) if fault == "reset" else None
    try:
        for index, chunk in enumerate(file_chunks(state.population, ids, config.bulk_file_layout, fault)):
            if reset_after is not None and index >= reset_after:
                break
            await pause_for_slow(config, fault, request)
            await response.write(chunk)
            # Lets the event loop stamp other arrivals between batches (rate-limit fairness).
            await asyncio.sleep(0)
        if reset_after is not None:
            _drop_connection(request)
            return response
        await response.write_eof()
    except ConnectionResetError:  # the client went away mid-file: nothing more to do
        return response
    request.app[BULK].completed_by_file[file_key] += 1
    return response


def _drop_connection(request: web.Request) -> None:
    admission = request.get(ADMISSION)
    if admission is not None:
        admission.dropped = True
    if request.transport is not None:
        request.transport.abort()


def _api_headers(state: SimulatorState, request: web.Request) -> dict[str, str]:
    """The middleware's API headers, set here because a streamed response is sent before it runs."""
    headers = {"x-correlation-id": new_correlation_id()}
    admission = request.get(ADMISSION)
    headers["x-credits-remaining"] = str(state.credits_header())
    if admission is not None:
        headers["x-ratelimit-limit-second"] = str(admission.decision.limit)
        headers["x-ratelimit-remaining-second"] = str(admission.decision.remaining)
    return headers


def add_routes(app: web.Application) -> None:
    app[BULK] = BulkRegistry()
    app.router.add_post(f"{SUBMIT_PREFIX}/id_file", submit_id_file)
    app.router.add_post(f"{SUBMIT_PREFIX}/es_dsl", submit_es_dsl)
    app.router.add_get(FILES_ROUTE, list_files, allow_head=False)
    # `.+`: file names carry a `json/` prefix, so they contain a slash.
    app.router.add_get(FILES_ROUTE + "/{file_name:.+}", download_file, allow_head=False)
