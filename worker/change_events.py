"""What changed between two versions of a clean employee profile (spec §5). Pure: no IO.

    change = diff_profiles(old_profile, new_profile)
    change.fields   # top-level fields whose value differs, e.g. ("experience", "headline")
    change.events   # RoleEvents derived from the experience[] diff
    change.to_dict()  # {"fields": [...], "events": [{"type", "company_id", ...}, ...]}

Event types (each carries the position's company id and name, title, date_from and date_to):
- `role_started`: a new open position (no `date_to`) appeared;
- `role_ended`: an open position got a `date_to` (or, rarer, an open position vanished from the
  profile: then `date_to` is None and `removed` is True);
- `role_changed`: the title or the company changed on the same position; `previous_title`,
  `previous_company_id` and `previous_company_name` say what it was.
A job change (old role closed, new one opened) is therefore role_ended + role_started. Events are
ordered ended, changed, started (the old job ends before the new one begins), then by position in
the new profile.

Position identity. `experience[]` items have no id in the schema (§5.2), so positions are matched
in passes, each only among items the earlier passes left unmatched:
1. by an `id` field, if both items carry one (future-proof; the API sends none today);
2. by (company, start month): company = `company_id`, or the normalised `company_name` when the
   id is null; start month = `date_from` cut to YYYY-MM (or date_from_year/-month);
3. by start month alone, when exactly one old and one new item share it: the same position whose
   company changed (a rebrand or an acquisition);
4. by company alone, when exactly one old and one new item share it: the same position whose start
   date was corrected.
Within one key, unchanged items (same company, title, start and open/closed state) pair first,
so a new position sharing the key of an old one (two job changes in one month) is not taken for
it. Titles and company names compare case- and whitespace-insensitively, so a re-capitalised title is
not a change. Deliberately no event for: a new *closed* position (history filled in later), a
closed position that vanished, or a closed position that re-opened (a correction, not a new role).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

type EventType = Literal["role_started", "role_ended", "role_changed"]
type Item = Mapping[str, Any]
_EVENT_ORDER: dict[EventType, int] = {"role_ended": 0, "role_changed": 1, "role_started": 2}


@dataclass(frozen=True, slots=True)
class RoleEvent:
    type: EventType
    company_id: int | None
    company_name: str | None
    title: str | None
    date_from: str | None
    date_to: str | None
    previous_title: str | None = None
    previous_company_id: int | None = None
    previous_company_name: str | None = None
    removed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ProfileChange:
    fields: tuple[str, ...]
    events: tuple[RoleEvent, ...]

    @property
    def changed(self) -> bool:
        return bool(self.fields)

    def to_dict(self) -> dict[str, Any]:
        return {"fields": list(self.fields), "events": [event.to_dict() for event in self.events]}


def diff_profiles(
    old: Mapping[str, Any], new: Mapping[str, Any], *, ignore: Iterable[str] = ()
) -> ProfileChange:
    """Changed top-level fields (minus `ignore`, e.g. {"last_updated"}) and the role events."""
    return ProfileChange(
        changed_fields(old, new, ignore=ignore),
        tuple(experience_events(_items(old.get("experience")), _items(new.get("experience")))),
    )


def changed_fields(
    old: Mapping[str, Any], new: Mapping[str, Any], *, ignore: Iterable[str] = ()
) -> tuple[str, ...]:
    """Top-level fields whose value differs (present on one side only counts), in the new
    document's order, then the fields only the old one had."""
    skipped = frozenset(ignore)
    names = [*new, *(name for name in old if name not in new)]
    return tuple(
        name
        for name in names
        if name not in skipped and (name not in old or name not in new or old[name] != new[name])
    )


def experience_events(old: Sequence[Item], new: Sequence[Item]) -> list[RoleEvent]:
    """Role events of the change from `old` to `new` experience lists (see the module doc)."""
    pairs, old_left, new_left = match_positions(old, new)
    position = {id(item): index for index, item in enumerate(new)}
    events: list[tuple[int, RoleEvent]] = []
    for before, after in pairs:
        events.extend((position[id(after)], event) for event in _pair_events(before, after))
    for after in new_left:
        if _is_open(after):
            events.append((position[id(after)], _event("role_started", after)))
    for before in old_left:
        if _is_open(before):
            events.append((len(new), _event("role_ended", before, removed=True)))
    events.sort(key=lambda entry: (_EVENT_ORDER[entry[1].type], entry[0]))
    return [event for _, event in events]


def match_positions(
    old: Sequence[Item], new: Sequence[Item]
) -> tuple[list[tuple[Item, Item]], list[Item], list[Item]]:
    """Pairs (old item, new item) of the same position, and the unmatched items of each side."""
    old_left, new_left = list(old), list(new)
    pairs: list[tuple[Item, Item]] = []
    pairs += _match(old_left, new_left, _item_id, unique_only=False)
    pairs += _match(old_left, new_left, _company_and_start, unique_only=False)
    pairs += _match(old_left, new_left, _start_month, unique_only=True)
    pairs += _match(old_left, new_left, _company_key, unique_only=True)
    return pairs, old_left, new_left


def _match(
    old_left: list[Item], new_left: list[Item], key: Callable[[Item], Hashable | None], *, unique_only: bool
) -> list[tuple[Item, Item]]:
    """Pair items with equal non-None keys, first come first paired; removes them from the lists.
    With `unique_only`, a key pairs only if exactly one item on each side has it."""
    old_by: dict[Hashable, list[Item]] = {}
    new_by: dict[Hashable, list[Item]] = {}
    for items, by in ((old_left, old_by), (new_left, new_by)):
        for item in items:
            value = key(item)
            if value is not None:
                by.setdefault(value, []).append(item)
    pairs: list[tuple[Item, Item]] = []
    for value, olds in old_by.items():
        news = new_by.get(value, [])
        if unique_only and (len(olds) != 1 or len(news) != 1):
            continue
        pairs.extend(_pair_group(olds, news))
    for before, after in pairs:
        _remove(old_left, before)
        _remove(new_left, after)
    return pairs


def _pair_group(olds: list[Item], news: list[Item]) -> list[tuple[Item, Item]]:
    """Pair items sharing a key: unchanged ones (same title, company and end) with each other
    first, so a new position that happens to share the key of an old one is not taken for it;
    then the rest in profile order."""
    pairs: list[tuple[Item, Item]] = []
    olds, news = list(olds), list(news)
    for before in list(olds):
        twin = next((after for after in news if _signature(after) == _signature(before)), None)
        if twin is not None:
            pairs.append((before, twin))
            _remove(olds, before)
            _remove(news, twin)
    pairs.extend(zip(olds, news, strict=False))
    return pairs


def _signature(item: Item) -> tuple[Hashable | None, str, str | None, bool]:
    return (_company_key(item), _norm(item.get("title")), _start_month(item), _is_open(item))


def _remove(items: list[Item], item: Item) -> None:
    for index, candidate in enumerate(items):
        if candidate is item:
            del items[index]
            return


def _pair_events(before: Item, after: Item) -> list[RoleEvent]:
    events = []
    if _is_open(before) and not _is_open(after):
        events.append(_event("role_ended", after))
    company_changed = _company_key(before) != _company_key(after)
    if company_changed or _norm(before.get("title")) != _norm(after.get("title")):
        events.append(
            _event(
                "role_changed",
                after,
                previous_title=_str(before.get("title")),
                previous_company_id=_int(before.get("company_id")),
                previous_company_name=_str(before.get("company_name")),
            )
        )
    return events


def _event(kind: EventType, item: Item, **extra: Any) -> RoleEvent:
    return RoleEvent(
        type=kind,
        company_id=_int(item.get("company_id")),
        company_name=_str(item.get("company_name")),
        title=_str(item.get("title")),
        date_from=_str(item.get("date_from")),
        date_to=_str(item.get("date_to")),
        **extra,
    )


def _items(raw: object) -> list[Item]:
    return [item for item in raw if isinstance(item, Mapping)] if isinstance(raw, list) else []


def _is_open(item: Item) -> bool:
    return item.get("date_to") is None and item.get("date_to_year") is None


def _item_id(item: Item) -> Hashable | None:
    value = item.get("id")
    return value if isinstance(value, int | str) and not isinstance(value, bool) else None


def _company_key(item: Item) -> Hashable | None:
    company_id = _int(item.get("company_id"))
    if company_id is not None:
        return ("id", company_id)
    name = _norm(item.get("company_name"))
    return ("name", name) if name else None


def _company_and_start(item: Item) -> Hashable | None:
    company, start = _company_key(item), _start_month(item)
    return None if company is None and start is None else (company, start)


def _start_month(item: Item) -> str | None:
    raw = item.get("date_from")
    if isinstance(raw, str) and len(raw) >= 7:
        return raw[:7]
    year, month = _int(item.get("date_from_year")), _int(item.get("date_from_month"))
    if year is None:
        return None
    return f"{year:04d}-{month:02d}" if month is not None else f"{year:04d}"


def _norm(value: object) -> str:
    return " ".join(value.split()).casefold() if isinstance(value, str) else ""


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
