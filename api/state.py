"""Typed keys for what the application holds: no module-level clients, everything hangs off the app."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from config import Settings
from worker.runtime import Services

SETTINGS = web.AppKey("settings", Settings)
SERVICES = web.AppKey("services", Services)
OPENAPI = web.AppKey("openapi", dict[str, Any])
