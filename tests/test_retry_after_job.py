"""Review #4 at the job level: a 429 whose Retry-After is an HTTP date in `-0000` used to raise
TypeError inside the collect job, which dead-lettered the item as an internal error and never
penalized the limiter. Now it is a cool-down like any other, and the item is collected."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from cli.wiring import run_fleet_worker
from config import Settings
from jobs.deadletter import list_dead_letters
from jobs.inputs import read_lines
from jobs.producers import enqueue_lines
from jobs.runs import get_status
from tests.conftest import with_overrides
from tests.upstream_stub import stub_upstream
from worker.runtime import Services


@pytest.mark.slow
async def test_a_minus_zero_retry_after_date_is_a_cool_down_not_a_dead_letter(
    settings: Settings, services: Services
) -> None:
    requests = 0

    async def first_429_then_profile(request: web.Request) -> web.Response:
        nonlocal requests
        requests += 1
        if requests == 1:
            soon = datetime.now(UTC) + timedelta(seconds=2)
            when = soon.strftime("%a, %d %b %Y %H:%M:%S -0000")  # naive once parsed
            return web.json_response(
                {"detail": "Too many requests"}, status=429, headers={"Retry-After": when}
            )
        employee_id = int(request.match_info["tail"].rsplit("/", 1)[-1])
        return web.json_response({"id": employee_id}, headers={"x-credits-remaining": "99"})

    async with stub_upstream(first_429_then_profile) as base_url:
        worker_settings = with_overrides(settings, coresignal_base_url=base_url)
        text = io.BytesIO(b"10000\n")
        receipt = await enqueue_lines(services, read_lines(text), "ids", source="t")
        await run_fleet_worker(worker_settings, burst=True)

    status = await get_status(services, receipt.run_id)
    assert status is not None and status.state == "finished"
    assert status.counts.get("inserted") == 1 and status.counts.get("upstream_429") == 1
    assert await list_dead_letters(services, run_id=receipt.run_id, reason=None, limit=10) == []
    assert requests == 2
