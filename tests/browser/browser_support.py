"""Helpers for the browser tests: the fleet under test as a client sees it, screenshots."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from config import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
TOKEN = "dashboard-token-5f3a9c0e7b1d4e2f8a6c"
POPULATION = 2000


@dataclass(frozen=True)
class Stack:
    url: str  # the API's base URL
    settings: Settings
    api_log: Path
    log_dir: Path
    simulator_url: str  # its /_sim control endpoints: a test may change how the upstream behaves

    def simulator(self, method: str, path: str, body: object = None) -> Any:
        return self.call(method, path, body, token=None, base=self.simulator_url)

    def call(
        self, method: str, path: str, body: object = None, token: str | None = TOKEN, base: str | None = None
    ) -> Any:
        """The HTTP API as any client calls it (the checks go through the API, not the stores)."""
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None if body is None else json.dumps(body).encode()
        url = (base or self.url) + path
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=15) as resp:
                return json.load(resp)
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from exc


def save_screenshot(page: Page, tmp_path: Path, name: str, copy_to: Path | None = None) -> Path:
    """A full-page screenshot in the test's tmp dir (a test artifact), optionally copied elsewhere."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if copy_to is not None:
        copy_to.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy_to)
    return path
