"""The planner: collect or bulk for a set of items, from the time model and the rate limits.

Fresh items (synced within FRESHNESS_TTL_S) are skipped first; what is left goes by bulk when it is
at least BULK_MIN_ITEMS, else by collect (`via` "collect"/"bulk" overrides; names always collect).

Time model (per API key; the limiter spaces requests at rate * (1 - RATE_SAFETY_MARGIN)):
- collect: one request per profile at COLLECT_RPS → N / 52.4 s; a search adds one page request
  per SEARCH_ITEMS_PER_PAGE ids at SEARCH_RPS.
- bulk: ⌈N / 10,000⌉ POSTs, polls with backoff from BULK_POLL_FIRST_S to BULK_POLL_CAP_S, one
  download per file of at most 10,000 records, all on the BULK_RPS class (a few requests in all);
  the wait is the data request's turnaround, BULK_EXPECTED_READY_S + N * BULK_EXPECTED_PER_RECORD_S
  (a GUESS: the API does not publish it). Writing to the mirror is the same on both paths.
Break-even: N / 52.4 = 60 + 0.0005 N → N ≈ 3,230 with the default guesses, hence BULK_MIN_ITEMS
3,000 (bulk also leaves the collect budget free for other runs, which tips a tie its way).
Credits: collect pays one call per profile; bulk pays at the POST per record delivered, so ids
that do not exist cost nothing by bulk (they are not delivered) and a 404 by collect is free too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from config import Settings

Via = Literal["auto", "collect", "bulk"]
VIAS: tuple[str, ...] = ("auto", "collect", "bulk")
MAX_BULK_RECORDS_PER_FILE = 10_000


@dataclass(frozen=True, slots=True)
class PathEstimate:
    credits: int
    requests: dict[str, int] = field(default_factory=dict)  # by endpoint class
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Plan:
    kind: str  # "ids", "names" or "search"
    items: int
    fresh: int | None  # None: not known before paging (a search)
    left: int
    via: str
    choice: str
    reason: str
    collect: PathEstimate
    bulk: PathEstimate | None  # None: bulk is not possible (names)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        """The plan as `employee-sync plan` prints it."""
        fresh = "unknown until paged" if self.fresh is None else f"{self.fresh:,}"
        lines = [
            f"items          {self.items:,}",
            f"already fresh  {fresh}  (synced within FRESHNESS_TTL_S: skipped)",
            f"to sync        {self.left:,}",
            "",
            f"{'path':<9}{'credits':>10}  {'requests by class':<36}{'est. time':>10}",
        ]
        for name, path in (("collect", self.collect), ("bulk", self.bulk)):
            if path is None:
                lines.append(f"{name:<9}{'-':>10}  {'not possible for names':<36}{'-':>10}")
                continue
            requests = ", ".join(f"{cls} {n:,}" for cls, n in path.requests.items()) or "-"
            lines.append(f"{name:<9}{path.credits:>10,}  {requests:<36}{_duration(path.seconds):>10}")
        lines += ["", f"choice: {self.choice} ({self.reason})"]
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _rate(settings: Settings, endpoint_class: str) -> float:
    return settings.rate_per_s(endpoint_class) * (1 - settings.rate_safety_margin)


def collect_estimate(settings: Settings, left: int, *, search_pages: int = 0) -> PathEstimate:
    requests = {"collect": left}
    seconds = left / _rate(settings, "collect")
    if search_pages:
        requests = {"search": search_pages, **requests}
        seconds += search_pages / _rate(settings, "search")
    return PathEstimate(credits=left, requests=requests, seconds=seconds)


def polls_until_ready(settings: Settings, ready_s: float) -> int:
    """Polls of one request with the job's backoff (taking each wait at its ceiling) until ready_s."""
    waited, polls, delay = 0.0, 1, settings.bulk_poll_first_s
    while waited < ready_s and polls < 10_000:
        waited += delay
        polls += 1
        delay = min(settings.bulk_poll_cap_s, delay * 2)
    return polls


def bulk_estimate(settings: Settings, left: int, *, search_requests: int = 0) -> PathEstimate:
    per_request = settings.bulk_request_ids
    posts = math.ceil(left / per_request) if left else 0
    ready_s = settings.bulk_expected_ready_s + min(left, per_request) * settings.bulk_expected_per_record_s
    files = sum(
        math.ceil(min(per_request, left - start) / MAX_BULK_RECORDS_PER_FILE)
        for start in range(0, left, per_request)
    )
    bulk_requests = posts * (1 + polls_until_ready(settings, ready_s)) + files
    requests = {"bulk": bulk_requests}
    if search_requests:
        requests = {"search": search_requests, **requests}
    # Requests go out together (one job per data request), so the wait is one turnaround plus
    # the requests at the bulk rate, not one turnaround per request.
    seconds = (ready_s if left else 0.0) + bulk_requests / _rate(settings, "bulk")
    seconds += search_requests / _rate(settings, "search")
    return PathEstimate(credits=left, requests=requests, seconds=seconds)


def choose(settings: Settings, via: str, left: int, *, bulk_possible: bool = True) -> tuple[str, str]:
    threshold = settings.bulk_min_items
    if via == "collect":
        return "collect", "asked for with --via collect"
    if via == "bulk":
        return "bulk", "asked for with --via bulk"
    if not bulk_possible:
        return "collect", "names stay on collect"
    if left >= threshold:
        return "bulk", f"{left:,} to sync ≥ BULK_MIN_ITEMS {threshold:,}"
    return "collect", f"{left:,} to sync < BULK_MIN_ITEMS {threshold:,}"


def plan_items(settings: Settings, kind: str, items: int, fresh: int, via: str) -> Plan:
    """A plan for an ids or names input of `items` distinct items, `fresh` of them fresh."""
    left = items - fresh
    bulk_possible = kind == "ids"
    choice, reason = choose(settings, via, left, bulk_possible=bulk_possible)
    return Plan(
        kind=kind,
        items=items,
        fresh=fresh,
        left=left,
        via=via,
        choice=choice,
        reason=reason,
        collect=collect_estimate(settings, left),
        bulk=bulk_estimate(settings, left) if bulk_possible else None,
    )


def plan_search(settings: Settings, matched: int, max_profiles: int | None, via: str) -> Plan:
    """A plan for a search matching `matched` (the count), capped at `max_profiles`.

    Collect pages through the ids (skipping fresh ones as it goes); bulk sends one es_dsl request
    when the capped count fits in one, else pages the ids too and sends id_file requests.
    """
    wanted = matched if max_profiles is None else min(matched, max_profiles)
    pages = math.ceil(wanted / settings.search_items_per_page) if wanted else 1
    split = wanted > settings.bulk_request_ids
    choice, reason = choose(settings, via, wanted)
    return Plan(
        kind="search",
        items=wanted,
        fresh=None,
        left=wanted,
        via=via,
        choice=choice,
        reason=reason + ("; bulk pages the ids first (over one request)" if split else ""),
        collect=collect_estimate(settings, wanted, search_pages=pages),
        bulk=bulk_estimate(settings, wanted, search_requests=1 + (pages if split else 0)),
    )
