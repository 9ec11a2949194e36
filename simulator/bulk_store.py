"""What the simulator remembers about bulk data requests (spec §8, §10.1 item 6).

A data request is created by a billed POST with the ids it will deliver (existing ids only, fixed
at submit time) and becomes ready on a time model: `bulk_base_delay_s + records *
bulk_per_record_s` after its creation. It expires `bulk_expiry_days` after creation, after which
every GET about it is a 404.

Time here is the *bulk clock*: the simulator's clock plus an offset that `POST /_sim/advance`
moves forward, so a test can reach the 30-day expiry without waiting. The rate limiter keeps
the plain clock: jumping days ahead must not empty its windows.

Fingerprints name a request's input the way a client's ledger would: the same ids in any order
(or the same query and limit, whatever the key order) give the same fingerprint. They key the
409 "identical request in flight" rule and the POST counts in `/_sim/stats`.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

SECONDS_PER_DAY = 86_400.0
MAX_IDS_PER_REQUEST = 10_000
TOO_MANY_IDS = "file contains too many ids maximum is 10,000 ids"
MATCHED_TOO_MANY = "request matched too many ids maximum is 10,000 ids"
IN_PROGRESS = "Identical data request is already in progress."


def id_file_fingerprint(ids: Iterable[int]) -> str:
    """The fingerprint of an id_file request: its distinct ids, order and repeats ignored."""
    text = ",".join(str(i) for i in sorted(set(ids)))
    return _digest("id_file", text)


def es_dsl_fingerprint(query: object, limit: int | None) -> str:
    """The fingerprint of an es_dsl request: the canonical query JSON and the limit."""
    text = json.dumps({"query": query, "limit": limit}, sort_keys=True, separators=(",", ":"))
    return _digest("es_dsl", text)


def _digest(kind: str, text: str) -> str:
    return f"{kind}:" + hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(slots=True)
class DataRequest:
    request_id: str
    kind: str  # "id_file" or "es_dsl"
    fingerprint: str
    ids: list[int]  # what will be delivered, ascending; empty for a failed request
    created_s: float  # bulk clock
    ready_s: float
    expires_s: float
    error: str | None = None  # set: GET files answers 422 with it once "processing" is over
    file_names: list[str] = field(default_factory=list)
    webhook_url: str | None = None

    def in_flight(self, now_s: float) -> bool:
        return now_s < self.ready_s

    def expired(self, now_s: float) -> bool:
        return now_s >= self.expires_s

    def file_ids(self, file_name: str, records_per_file: int) -> list[int] | None:
        """The ids in one file of this request, None if it has no such file."""
        try:
            index = self.file_names.index(file_name)
        except ValueError:
            return None
        return self.ids[index * records_per_file : (index + 1) * records_per_file]


def file_names_for(records: int, records_per_file: int) -> list[str]:
    """`json/part-00000-<uuid>-c000.json.gz`, one per file (the real API's naming, §8.2)."""
    tag = uuid.uuid4()
    count = math.ceil(records / records_per_file)
    return [f"json/part-{index:05d}-{tag}-c000.json.gz" for index in range(count)]


@dataclass(slots=True)
class BulkRegistry:
    requests: dict[str, DataRequest] = field(default_factory=dict)
    posts_by_fingerprint: Counter[str] = field(default_factory=Counter)
    created_by_fingerprint: Counter[str] = field(default_factory=Counter)
    downloads_by_file: Counter[str] = field(default_factory=Counter)
    completed_by_file: Counter[str] = field(default_factory=Counter)

    def in_flight(self, fingerprint: str, now_s: float) -> DataRequest | None:
        for request in self.requests.values():
            if request.fingerprint == fingerprint and request.in_flight(now_s):
                return request
        return None

    def create(
        self,
        *,
        kind: str,
        fingerprint: str,
        ids: Sequence[int],
        now_s: float,
        processing_s: float,
        expiry_s: float,
        records_per_file: int,
        error: str | None = None,
        webhook_url: str | None = None,
    ) -> DataRequest:
        request = DataRequest(
            request_id=str(uuid.uuid4()),
            kind=kind,
            fingerprint=fingerprint,
            ids=sorted(ids),
            created_s=now_s,
            ready_s=now_s + processing_s,
            expires_s=now_s + expiry_s,
            error=error,
            file_names=[] if error else file_names_for(len(ids), records_per_file),
            webhook_url=webhook_url,
        )
        self.requests[request.request_id] = request
        self.created_by_fingerprint[fingerprint] += 1
        return request

    def stats(self) -> dict[str, Any]:
        return {
            "posts_by_fingerprint": dict(sorted(self.posts_by_fingerprint.items())),
            "created_by_fingerprint": dict(sorted(self.created_by_fingerprint.items())),
            "downloads_by_file": dict(sorted(self.downloads_by_file.items())),
            "completed_by_file": dict(sorted(self.completed_by_file.items())),
            "requests": {
                r.request_id: {
                    "kind": r.kind,
                    "fingerprint": r.fingerprint,
                    "records": len(r.ids),
                    "files": len(r.file_names),
                    "error": r.error,
                }
                for r in self.requests.values()
            },
        }

    def reset(self) -> None:
        self.requests.clear()
        for counter in (
            self.posts_by_fingerprint,
            self.created_by_fingerprint,
            self.downloads_by_file,
            self.completed_by_file,
        ):
            counter.clear()


BULK = web.AppKey("simulator_bulk", BulkRegistry)
