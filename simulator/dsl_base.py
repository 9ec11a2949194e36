"""Types shared by the es_dsl compiler modules (`dsl`, `dsl_leaves`, `dsl_query_string`).

A compiled clause is an `Eval`: it returns None when the document does not match, otherwise its
relevance score. Folding "matches" and "score" into one call lets each clause be written once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NoReturn

type Doc = Mapping[str, Any]
type Eval = Callable[[Doc], float | None]

# ES refuses bool queries nested deeper than `indices.query.bool.max_nested_depth` (30). Keeping a
# bound also keeps a hostile body from exhausting the Python stack while it is being compiled.
MAX_DEPTH = 30


class QueryError(Exception):
    """A request the simulator rejects; `status` is the HTTP status (400 or 422) to answer with."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Ctx:
    """Where a clause sits: inside which nested path, at which JSON path, how deep."""

    scope: str | None
    now: datetime
    where: str
    depth: int = 0

    def at(self, segment: str) -> Ctx:
        return replace(self, where=f"{self.where}{segment}")

    def deeper(self, segment: str, scope: str | None) -> Ctx:
        if self.depth >= MAX_DEPTH:
            self.at(segment).fail(f"query is nested deeper than {MAX_DEPTH} levels")
        return replace(self, where=f"{self.where}{segment}", scope=scope, depth=self.depth + 1)

    def fail(self, message: str) -> NoReturn:
        raise QueryError(400, f"{message} (at {self.where})")
