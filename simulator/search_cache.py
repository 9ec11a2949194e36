"""The sorted match lists of recent searches, so that paging through a query costs one scan.

Keyed by (canonical JSON of the query, sort mode, population generation). A population change
moves the generation on, so an entry for an older one is never looked up again and ages out of
the LRU.

While a scan runs, its entry is the task computing it: concurrent requests for the same query
and generation wait for that one scan instead of starting their own. A finished entry is the
list itself; a scan that failed is forgotten, so the next request tries again.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable

from simulator.search_paging import Match

type CacheKey = tuple[str, str, int]  # (canonical query JSON, sort mode, population generation)

DEFAULT_MAX_ENTRIES = 32


class SearchCache:
    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[CacheKey, list[Match] | asyncio.Task[list[Match]]] = OrderedDict()
        self.scans = 0  # scans started: what a test counts to prove the cache works

    def __len__(self) -> int:
        return len(self._entries)

    async def matches(self, key: CacheKey, scan: Callable[[], list[Match]]) -> list[Match]:
        """The cached matches for `key`, else the result of `scan()`, run in a worker thread."""
        entry = self._entries.get(key)
        if entry is None:
            self.scans += 1
            entry = asyncio.create_task(asyncio.to_thread(scan))
            entry.add_done_callback(lambda task: self._settle(key, task))
            self._entries[key] = entry
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        if isinstance(entry, list):
            return entry
        # Shielded: a request that goes away must not cancel a scan others may be waiting for.
        return await asyncio.shield(entry)

    def clear(self) -> None:
        self._entries.clear()

    def _settle(self, key: CacheKey, task: asyncio.Task[list[Match]]) -> None:
        if self._entries.get(key) is not task:  # evicted or cleared meanwhile
            return
        if task.cancelled() or task.exception() is not None:
            del self._entries[key]
        else:
            self._entries[key] = task.result()
