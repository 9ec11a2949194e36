"""The dashboard in a real browser (Chromium, headless) against a real fleet: the simulator, two workers
and the API as processes on real Redis and the Mongo-wire server. Screenshots are saved in each
test's tmp dir (pytest keeps the last three runs' dirs)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from browser_support import TOKEN, Stack, save_screenshot
from playwright.sync_api import Page, expect
from pymongo import MongoClient

from simulator.population import Population
from worker.store.mongo import DEAD_LETTERS

pytestmark = pytest.mark.slow

UI_TIMEOUT_MS = 30_000
PANEL_POLL_TIMEOUT_MS = 45_000  # the subscriptions panel polls every 30 s


def sign_in(page: Page, stack: Stack, token: str = TOKEN) -> None:
    page.goto(stack.url + "/ui")
    page.fill("input[name=token]", token)
    page.click("#login button[type=submit]")


def create_run(stack: Stack, first: int, count: int) -> str:
    ids = [Population.id_at(i) for i in range(first, first + count)]
    return str(stack.call("POST", "/v1/runs", {"employee_ids": ids})["run_id"])


def done_of(page: Page, run_id: str) -> int:
    text = page.locator(f"tr.run-row[data-run='{run_id}'] td.run-done").inner_text(timeout=UI_TIMEOUT_MS)
    return int(text.split("/")[0].strip().replace(",", ""))


def wait_until(check: object, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(check) and check():
            return
        time.sleep(0.3)
    raise AssertionError(f"not within {timeout_s}s: {what}")


def test_signed_in_the_page_shows_a_run_advancing_the_rate_against_the_limit_and_pauses_it(
    page: Page, stack: Stack, tmp_path: Path, screenshot_copy: Path | None
) -> None:
    if screenshot_copy is not None:  # the README's picture: the bulk and subscription panels show
        add_bulk_run_and_subscription(stack)  # only when there is something in them
    sign_in(page, stack)
    expect(page.locator("#overview-view")).to_be_visible(timeout=UI_TIMEOUT_MS)
    polled: list[str] = []
    page.on("request", lambda request: polled.append(request.url))
    run_id = create_run(stack, 0, 600)

    # The run appears (the page reads the runs page when the fleet's runs by state move) and its
    # progress advances; between two reads of the runs page, from its live counters (Redis only).
    row = page.locator(f"tr.run-row[data-run='{run_id}']")
    expect(row).to_be_visible(timeout=UI_TIMEOUT_MS)
    wait_until(lambda: done_of(page, run_id) > 0, "the run's first profiles done")
    first = done_of(page, run_id)
    wait_until(lambda: done_of(page, run_id) > first, "the run's progress advancing")
    expect(row.locator(".run-state")).to_have_text("running")
    page.wait_for_timeout(4000)  # one more poll (Playwright hands over the requests while it waits)
    assert any(f"/v1/dashboard/live-runs?run_ids={run_id}" in url for url in polled), polled

    # The rate panel: the collect limit and traffic the whole fleet was granted.
    collect = page.locator(".card[data-class='collect']")
    expect(collect.locator(".limit-value")).to_have_text("54")
    wait_until(lambda: int(collect.locator(".granted").inner_text().replace(",", "")) > 0, "granted > 0")
    expect(page.locator("#live-workers")).to_contain_text(re.compile(r"^2 "), timeout=UI_TIMEOUT_MS)
    expect(page.locator("#credits-body")).to_contain_text(re.compile(r"\d{3},\d{3}"), timeout=UI_TIMEOUT_MS)
    if screenshot_copy is not None:  # the README's picture: let the chart fill in a little first
        wait_until(lambda: done_of(page, run_id) >= 350, "a fuller chart", timeout_s=120)
        expect(page.locator("#panel-bulk")).to_be_visible(timeout=PANEL_POLL_TIMEOUT_MS)
        expect(page.locator("#panel-subscriptions")).to_be_visible(timeout=PANEL_POLL_TIMEOUT_MS)
    save_screenshot(page, tmp_path, "dashboard.png", screenshot_copy)

    # Pause from the page; the API says the run is paused.
    row.locator("button.act-pause").click()
    wait_until(lambda: stack.call("GET", f"/v1/runs/{run_id}")["state"] == "paused", "paused via the UI")
    expect(row.locator(".run-state")).to_have_text("paused", timeout=UI_TIMEOUT_MS)
    row.locator("button.act-resume").click()
    wait_until(lambda: stack.call("GET", f"/v1/runs/{run_id}")["state"] == "running", "resumed via the UI")

    # The token is in this tab's session storage only: no cookie, not in the URL.
    assert page.evaluate("sessionStorage.getItem('employee-sync.token')") == TOKEN
    assert page.context.cookies() == []
    assert TOKEN not in page.url
    stack.call("POST", f"/v1/runs/{run_id}/cancel")  # leave the fleet idle for the next test


def add_bulk_run_and_subscription(stack: Stack) -> None:
    """For the README's picture: a small bulk run and a subscription, so those panels have rows."""
    ids = [Population.id_at(i) for i in range(1600, 1700)]
    stack.call("POST", "/v1/runs", {"employee_ids": ids, "via": "bulk"})
    stack.call("POST", "/v1/subscriptions", {"type": "experience", "ids": ids[:20]})


def test_a_wrong_token_shows_an_error_and_no_data(page: Page, stack: Stack, tmp_path: Path) -> None:
    create_run(stack, 1000, 5)  # there is data to leak

    sign_in(page, stack, token="not-the-token")

    expect(page.locator("#login-error")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.locator("#login-error")).to_contain_text("Wrong token")
    expect(page.locator("#overview-view")).to_be_hidden()
    expect(page.locator("#search")).to_be_hidden()
    assert page.locator("tr.run-row").count() == 0
    assert page.locator(".card").count() == 0
    assert page.evaluate("sessionStorage.getItem('employee-sync.token')") is None
    save_screenshot(page, tmp_path, "wrong-token.png")


def test_search_finds_a_mirrored_employee_by_id_and_name_and_a_run(
    page: Page, stack: Stack, tmp_path: Path
) -> None:
    run_id = create_run(stack, 1500, 3)
    wait_until(lambda: stack.call("GET", f"/v1/runs/{run_id}")["state"] == "finished", "the small run done")
    employee_id = Population.id_at(1500)
    name = stack.call("GET", f"/v1/employees/{employee_id}")["profile"]["shorthand_names"][0]
    sign_in(page, stack)
    expect(page.locator("#overview-view")).to_be_visible(timeout=UI_TIMEOUT_MS)

    page.fill("#search-q", str(employee_id))
    page.press("#search-q", "Enter")
    expect(page.locator("#employee-view")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.locator("#employee-title")).to_contain_text(str(employee_id))
    expect(page.locator("#collects-table tbody tr")).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(page.locator("#collects-table tbody tr").first).to_contain_text("inserted")
    save_screenshot(page, tmp_path, "employee.png")

    page.click("header h1 a")  # back to the overview, then by shorthand name
    expect(page.locator("#overview-view")).to_be_visible(timeout=UI_TIMEOUT_MS)
    page.fill("#search-q", name)
    page.press("#search-q", "Enter")
    expect(page).to_have_url(re.compile(f"#/employees/{employee_id}$"), timeout=UI_TIMEOUT_MS)

    page.fill("#search-q", run_id)
    page.press("#search-q", "Enter")
    expect(page.locator("#run-view")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.locator("#run-id")).to_have_text(run_id)
    expect(page.locator("#run-body dd[data-field='state']")).to_have_text("finished")
    expect(page.locator("#run-body dd[data-field='inserted']")).to_have_text("3")
    assert TOKEN not in stack.api_log.read_text(errors="replace")


def test_dead_letters_are_listed_by_reason_and_requeued_from_the_page(
    page: Page, stack: Stack, tmp_path: Path
) -> None:
    run_id = create_run(stack, 1800, 2)
    wait_until(lambda: stack.call("GET", f"/v1/runs/{run_id}")["state"] == "finished", "the small run done")
    reason = "upstream 403: key not allowed"
    letters = [
        {
            "_id": f"{run_id}:id:{Population.id_at(1800 + n)}", "run_id": run_id,
            "item_key": f"id:{Population.id_at(1800 + n)}", "reason": reason, "error_type": "PermanentError",
            "status": 403, "attempts": 1, "at": datetime.now(UTC),
        }
        for n in range(2)
    ]  # fmt: skip
    with MongoClient(stack.settings.mongodb_url, tz_aware=True) as client:
        client[stack.settings.mongodb_database][DEAD_LETTERS].insert_many(letters)
    sign_in(page, stack)

    row = page.locator("#reasons-table tbody tr", has_text=reason)
    expect(row).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(row.locator("td").nth(1)).to_have_text("2")
    expect(page.locator("#letters-table tbody tr")).to_have_count(2)
    save_screenshot(page, tmp_path, "dead-letters.png")
    row.locator("button.requeue").click()

    wait_until(lambda: stack.call("GET", "/v1/dashboard/dead-letters")["total"] == 0, "letters requeued")
    expect(page.locator("#letters-table tbody tr")).to_have_count(0, timeout=UI_TIMEOUT_MS)


def test_bulk_requests_and_subscriptions_have_panels_and_a_data_request_id_opens_its_page(
    page: Page, stack: Stack, tmp_path: Path
) -> None:
    # Files of 100 records, so the request's 300 profiles come as three files.
    stack.simulator("PATCH", "/_sim/config", {"bulk_file_records": 100, "bulk_base_delay_s": 0.5})
    ids = [Population.id_at(i) for i in range(1200, 1500)]
    run_id = stack.call("POST", "/v1/runs", {"employee_ids": ids, "via": "bulk"})["run_id"]
    created = stack.call("POST", "/v1/subscriptions", {"type": "experience", "ids": ids[:50]})
    # A delivery from the upstream, through the subscription's own capability URL.
    stack.call(
        "POST", created["webhook_url"].removeprefix(stack.url), [{"member_id": ids[0], "status": "changed"}]
    )
    wait_until(
        lambda: stack.call("GET", f"/v1/runs/{run_id}")["state"] == "finished", "the bulk run done", 120
    )
    (row,) = stack.call("GET", f"/v1/dashboard/data-requests?run_id={run_id}")["data_requests"]
    sign_in(page, stack)

    bulk = page.locator(f"#bulk-table tr.dr-row[data-dr='{row['id']}']")
    expect(bulk).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(bulk.locator(".dr-state")).to_have_text("done")
    expect(bulk.locator(".dr-files")).to_have_text("3 / 3")
    expect(bulk.locator(".dr-records")).to_have_text("300")
    subscription = page.locator(f"#subs-table tr.sub-row[data-sub='{created['id']}']")
    expect(subscription).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(subscription.locator(".sub-state")).to_have_text("active")
    expect(subscription.locator(".sub-delivery")).to_contain_text(" ago")
    expect(subscription).to_contain_text("ids")
    save_screenshot(page, tmp_path, "bulk-and-subscriptions.png")

    # The upstream's data request id opens the request's page: its state, its run, its files.
    page.fill("#search-q", row["request_id"])
    page.press("#search-q", "Enter")
    expect(page.locator("#data-request-view")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.locator("#dr-body dd[data-field='state']")).to_have_text("done")
    expect(page.locator("#dr-body dd[data-field='run']")).to_contain_text(f"{run_id} (finished)")
    expect(page.locator("#dr-files tbody tr")).to_have_count(3)
    expect(page.locator("#dr-files td.file-done")).to_have_text(["yes", "yes", "yes"])
    save_screenshot(page, tmp_path, "data-request.png")

    page.locator("#dr-body dd[data-field='run'] a").click()  # and on to the bulk run it belongs to
    expect(page.locator("#run-id")).to_have_text(run_id, timeout=UI_TIMEOUT_MS)
    expect(page.locator(f"#run-data-requests tr.dr-row[data-dr='{row['id']}']")).to_be_visible()
    assert TOKEN not in stack.api_log.read_text(errors="replace")
