"""The simulated employee population: ids, lookup by collect key, and test-driven changes.

Profiles are never stored; `profile(id)` regenerates one in O(1) from (seed, index, version) and
keeps recent ones in a bounded LRU, because a search scans the whole population. The only state
is two small maps: per-id change histories (`simulator.mutations.Change`, appended by `mutate` and
`apply_change`; the version of a profile is the length of its history) and removed ids.

Every change moves `generation` forward, so a cached search result keyed by it goes stale on
its own. A search scans a `Snapshot`, a frozen copy of those maps: it may run in a worker thread
while the event loop keeps changing the population, and it still sees exactly one generation.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from simulator.careers import Naming
from simulator.mutations import Change
from simulator.profiles import DateFormat, ProfileOptions, build_profile
from simulator.slugs import slug_from_key, suffix_candidates

ID_BASE = 10_000
# A stride > 1 leaves gaps, so there are plenty of well-formed ids that do not exist.
ID_STRIDE = 7
DEFAULT_CACHE_SIZE = 50_000

# Shared by all instances, so a rebuilt population never repeats an old one's generation.
_GENERATIONS = itertools.count(1)


class Population:
    def __init__(
        self,
        seed: int,
        size: int,
        *,
        naming: Naming = "real",
        date_format: DateFormat = "datetime",
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.size = size
        self._options = ProfileOptions(seed, naming, date_format)
        self._changes: dict[int, tuple[Change, ...]] = {}
        self._removed: set[int] = set()
        # Per instance, not a decorated method: a class-level cache would outlive the app.
        # functools' LRU is thread-safe and `_build` is pure, so worker threads may share it.
        self._cached_build = functools.lru_cache(maxsize=cache_size)(self._build)
        self.generation = next(_GENERATIONS)

    @staticmethod
    def id_at(index: int) -> int:
        return ID_BASE + ID_STRIDE * index

    def index_of(self, employee_id: int) -> int | None:
        """The generator index of an id in the population (removed or not), else None."""
        offset = employee_id - ID_BASE
        if offset < 0 or offset % ID_STRIDE:
            return None
        index = offset // ID_STRIDE
        return index if index < self.size else None

    def exists(self, employee_id: int) -> bool:
        return self.index_of(employee_id) is not None and employee_id not in self._removed

    def iter_ids(self) -> Iterator[int]:
        """Ids of all present (not removed) employees, ascending."""
        for index in range(self.size):
            employee_id = self.id_at(index)
            if employee_id not in self._removed:
                yield employee_id

    def version(self, employee_id: int) -> int:
        return len(self._changes.get(employee_id, ()))

    def history(self, employee_id: int) -> tuple[Change, ...]:
        return self._changes.get(employee_id, ())

    def profile(self, employee_id: int) -> dict[str, Any] | None:
        """The current document, or None if unknown or removed.

        The dict is shared with the cache: callers must not modify it.
        """
        if not self.exists(employee_id):
            return None
        return self._cached_build(employee_id, self.history(employee_id))

    def profile_at(self, employee_id: int, version: int) -> dict[str, Any] | None:
        """The document as it was after its first `version` changes (shared: do not modify)."""
        if not self.exists(employee_id):
            return None
        return self._cached_build(employee_id, self.history(employee_id)[:version])

    def resolve(self, key: str) -> int | None:
        """Employee id for a collect key: an id, a shorthand name or a profile URL (spec §4)."""
        if key.isascii() and key.isdigit():
            employee_id = int(key)
            return employee_id if self.exists(employee_id) else None
        slug = slug_from_key(key)
        if slug is None:
            return None
        for candidate in suffix_candidates(slug):
            document = self.profile(candidate)
            if document is not None and slug in document["shorthand_names"]:
                return candidate
        return None

    def mutate(self, employee_id: int) -> int | None:
        """Give the employee a new job (a new version); returns the version, None if absent."""
        return self.apply_change(employee_id, Change("role_started"))

    def apply_change(self, employee_id: int, change: Change) -> int | None:
        """Append one change to the history; returns the new version, None if absent."""
        if not self.exists(employee_id):
            return None
        self._changes[employee_id] = (*self.history(employee_id), change)
        self._changed()
        return len(self._changes[employee_id])

    def remove(self, employee_id: int) -> bool:
        if self.index_of(employee_id) is None:
            return False
        self._removed.add(employee_id)
        self._changed()
        return True

    def restore(self, employee_id: int) -> bool:
        if self.index_of(employee_id) is None:
            return False
        self._removed.discard(employee_id)
        self._changed()
        return True

    def clear_changes(self) -> None:
        self._changes.clear()
        self._removed.clear()
        self._changed()

    def snapshot(self) -> Snapshot:
        """The population as it is now; O(number of changes), not O(size)."""
        return Snapshot(
            self.generation, self.size, frozenset(self._removed), dict(self._changes), self._cached_build
        )

    def _changed(self) -> None:
        self.generation = next(_GENERATIONS)

    def _build(self, employee_id: int, changes: tuple[Change, ...]) -> dict[str, Any]:
        index = self.index_of(employee_id)
        assert index is not None  # callers check exists() first
        return build_profile(self._options, index, employee_id, changes)


class Snapshot:
    """One generation of a population, frozen; safe to scan from a worker thread.

    It reads only its own copies and the population's thread-safe profile cache, so later
    changes to the population do not show through.
    """

    __slots__ = ("_build", "_changes", "_removed", "generation", "size")

    def __init__(
        self,
        generation: int,
        size: int,
        removed: frozenset[int],
        changes: Mapping[int, tuple[Change, ...]],
        build: Callable[[int, tuple[Change, ...]], dict[str, Any]],
    ) -> None:
        self.generation = generation
        self.size = size
        self._removed = removed
        self._changes = changes
        self._build = build

    def profiles(self) -> Iterator[dict[str, Any]]:
        """The documents of all present employees, by ascending id; shared, do not modify."""
        for index in range(self.size):
            employee_id = Population.id_at(index)
            if employee_id not in self._removed:
                yield self._build(employee_id, self._changes.get(employee_id, ()))
