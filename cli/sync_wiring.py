"""Async entry points behind `employee-sync syncs ...` and `employee-sync freshness`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from config import Settings
from jobs.scheduler import budgets_of
from jobs.syncs import (
    SyncRequest,
    build_sync,
    delete_sync,
    get_sync,
    list_syncs,
    run_now,
    save_sync,
    set_sync_state,
    sync_view,
)
from worker.freshness import freshness_of
from worker.runtime import Services
from worker.sync_model import SyncState


async def _with_services[T](settings: Settings, action: Callable[[Services], Awaitable[T]]) -> T:
    services = await Services.open(settings)
    try:
        return await action(services)
    finally:
        await services.close()


async def sync_create(settings: Settings, request: SyncRequest) -> dict[str, Any]:
    # A bad definition is refused before any store is reached: the user hears about the bad
    # duration or query, not about a database that happens to be down.
    sync, members = build_sync(request)

    async def act(services: Services) -> dict[str, Any]:
        return await sync_view(services, await save_sync(services, sync, members))

    return await _with_services(settings, act)


async def sync_list(settings: Settings) -> list[dict[str, Any]]:
    async def act(services: Services) -> list[dict[str, Any]]:
        return [await sync_view(services, s) for s in await list_syncs(services)]

    return await _with_services(settings, act)


async def sync_show(settings: Settings, name: str) -> dict[str, Any]:
    async def act(services: Services) -> dict[str, Any]:
        sync = await get_sync(services, name)
        fresh = await freshness_of(services.store, budgets_of(services), sync)
        return {**await sync_view(services, sync), "freshness": fresh.as_dict()}

    return await _with_services(settings, act)


async def sync_action(settings: Settings, action: str, name: str) -> dict[str, Any] | None:
    async def act(services: Services) -> dict[str, Any] | None:
        if action == "pause":
            return await sync_view(services, await set_sync_state(services, name, SyncState.PAUSED))
        if action == "resume":
            return await sync_view(services, await set_sync_state(services, name, SyncState.ACTIVE))
        if action == "run-now":
            return await sync_view(services, await run_now(services, name))
        await delete_sync(services, name)
        return None

    return await _with_services(settings, act)


async def freshness_report(settings: Settings, name: str | None) -> list[dict[str, Any]]:
    async def act(services: Services) -> list[dict[str, Any]]:
        syncs = [await get_sync(services, name)] if name else await list_syncs(services)
        budgets = budgets_of(services)
        return [(await freshness_of(services.store, budgets, s)).as_dict() for s in syncs]

    return await _with_services(settings, act)
