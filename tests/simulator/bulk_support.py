"""Test helpers for the simulator's bulk endpoints: submit, list files, download raw bytes."""

from __future__ import annotations

import gzip
import io
import json
from typing import Any

import aiohttp
from sim_support import API_KEY, Reply, Sim

SUBMIT_PATH = "/cdapi/v2/data_requests/employee_clean/"
FILES_PATH = "/cdapi/v2/data_requests/{}/files"


async def post_id_file(
    sim: Sim,
    content: str,
    *,
    webhook_url: str | None = None,
    api_key: str | None = API_KEY,
    filename: str = "ids.csv",
) -> Reply:
    form = aiohttp.FormData()
    # A file object, not bytes: aiohttp warns about large raw bodies (and warnings are errors).
    form.add_field("ids_file", io.BytesIO(content.encode()), filename=filename, content_type="text/csv")
    if webhook_url is not None:
        form.add_field("webhook_url", webhook_url)
    headers = {} if api_key is None else {"apikey": api_key}
    async with sim.client.session.post(
        sim.url(SUBMIT_PATH + "id_file"), data=form, headers=headers
    ) as response:
        return Reply(response.status, response.headers, await response.text())


def ids_text(ids: list[int]) -> str:
    return "".join(f"{i}\n" for i in ids)


async def post_es_dsl(sim: Sim, body: Any) -> Reply:
    headers = {"apikey": API_KEY, "Content-Type": "application/json"}
    return await sim.request("POST", SUBMIT_PATH + "es_dsl", headers=headers, json_body=body)


async def list_files(sim: Sim, request_id: str) -> Reply:
    return await sim.request("GET", FILES_PATH.format(request_id), headers={"apikey": API_KEY})


async def download_raw(sim: Sim, request_id: str, name: str) -> tuple[int, dict[str, str], bytes]:
    """The file's bytes exactly as sent (no automatic decompression)."""
    url = sim.url(FILES_PATH.format(request_id) + "/" + name)
    async with sim.client.session.get(url, headers={"apikey": API_KEY}, auto_decompress=False) as response:
        return response.status, dict(response.headers), await response.read()


def jsonl_documents(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(raw).decode().splitlines() if line]


async def submit_ready(sim: Sim, ids: list[int]) -> tuple[str, list[str]]:
    """Submit ids with no processing delay; the request id and its file names."""
    reply = await post_id_file(sim, ids_text(ids))
    assert reply.status == 201, reply.text
    request_id: str = reply.json()["request_id"]
    listed = await list_files(sim, request_id)
    assert listed.status == 200, listed.text
    names: list[str] = listed.json()["data_request_files"]
    return request_id, names


def existing_ids(sim: Sim, count: int, start: int = 0) -> list[int]:
    population = sim.state.population
    return [population.id_at(index) for index in range(start, start + count)]
