"""One synthetic clean-employee document (spec §5), built from (seed, index, change history).

Everything about the person is drawn from `Random(f"{seed}:{index}")` before any change is
applied; the history (`simulator.mutations.Change`s, oldest first) is then replayed, change k from
its own `Random(f"{seed}:{index}:{k}")`. So a change moves the career and freshness of a profile
but never its identity (names, and so its shorthand names, stay put), no RNG state is shared
between profiles, and the same history always rebuilds the same document.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from simulator import extras
from simulator.careers import (
    Naming,
    Role,
    change_job,
    company_id,
    format_duration,
    initial_career,
    render_experience,
    role_months,
)
from simulator.mutations import (
    Change,
    Mutable,
    apply_connections,
    change_other,
    change_role,
    end_role,
)
from simulator.slugs import base36, profile_url
from simulator.wordlists import (
    COMPANIES,
    DECISION_MAKER_LEVELS,
    DEPARTMENTS,
    FIRST_NAMES,
    GENERAL_SKILLS,
    HEADLINE_TAILS,
    LAST_NAMES,
    MIDDLE_NAMES,
    PLACES,
    Department,
    Place,
)

DateFormat = Literal["date", "datetime"]

# Fixed "today" of the synthetic world, so a profile is the same whenever it is generated.
REFERENCE_DATE = date(2025, 10, 1)
# Each job change moves `last_updated` this far past the previous version.
CHANGE_STEP = timedelta(days=35)


@dataclass(frozen=True, slots=True)
class ProfileOptions:
    seed: int
    naming: Naming = "real"
    date_format: DateFormat = "datetime"


def shorthand_names(first: str, last: str, employee_id: int) -> list[str]:
    """Current name first, then the historical one (spec §5.1 orders current first)."""
    suffix = base36(employee_id)
    return [f"{first}-{last}-{suffix}", f"{first}{last}{suffix}"]


def public_profile_id(employee_id: int) -> int:
    # 7919 is prime and coprime with 10**8, so this is a bijection on ids below 10**8.
    return 300_000_000 + (employee_id * 7919) % 100_000_000


def build_profile(
    options: ProfileOptions, index: int, employee_id: int, changes: tuple[Change, ...] = ()
) -> dict[str, Any]:
    """The document after replaying `changes` (oldest first) over the generated person."""
    rng = random.Random(f"{options.seed}:{index}")
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    middle = rng.choice(MIDDLE_NAMES) if rng.random() < 0.15 else None
    dept = rng.choice(DEPARTMENTS)
    last_updated = REFERENCE_DATE - timedelta(days=rng.randrange(400))
    roles = initial_career(rng, dept, last_updated, working=rng.random() < 0.9)
    doc = _identity(rng, employee_id, first, middle, last)
    doc.update(_location(rng))
    skills = _skills(rng, dept)
    doc.update(extras.person_extras(rng, first_role_start=roles[0].date_from))
    tail = rng.choice(HEADLINE_TAILS)

    state = Mutable(roles, tail, skills)
    for step, change in enumerate(changes, start=1):
        last_updated = _next_last_updated(last_updated, change.day)
        _apply(change, state, random.Random(f"{options.seed}:{index}:{step}"), last_updated)
    tail = state.tail
    if state.place is not None:
        doc.update(_location_of(PLACES[state.place]))
    apply_connections(doc, state.connections_delta)

    doc.update(_current_job(roles, last_updated, tail))
    doc["last_updated"] = _format_date(last_updated, options.date_format)
    doc["description"] = (
        f"{dept.function} professional based in {doc['location_city']}. "
        f"Experienced in {', '.join(skills[:3])}. {tail}."
    )
    doc["experience"] = render_experience(roles, options.naming)
    doc["skills"] = skills
    if options.naming == "docs":
        doc["websites_professional_network"] = doc.pop("websites_linkedin")
    return _ordered(doc)


def _identity(
    rng: random.Random, employee_id: int, first: str, middle: str | None, last: str
) -> dict[str, Any]:
    names = shorthand_names(first, last, employee_id)
    full = " ".join(part.capitalize() for part in (first, middle, last) if part)
    return {
        "id": employee_id,
        "public_profile_id": public_profile_id(employee_id),
        "full_name": full,
        "name_first": first.capitalize(),
        "name_middle": middle.capitalize() if middle else None,
        "name_last": last.capitalize(),
        "websites_linkedin": profile_url(names[0]),
        "shorthand_names": names,
        "is_deleted": int(rng.random() < 0.01),
        "is_hidden": int(rng.random() < 0.005),
        "picture_url": (
            f"https://media.licdn.com/dms/image/sim/{base36(employee_id)}/profile.jpg"
            if rng.random() < 0.8
            else None
        ),
        "connections_count": min(500, int(rng.paretovariate(1.1) * 40)),
        "follower_count": int(rng.paretovariate(1.0) * 45),
    }


def _next_last_updated(previous: date, day: date | None) -> date:
    if day is None:
        return previous + CHANGE_STEP
    return max(day, previous + timedelta(days=1))


def _apply(change: Change, state: Mutable, rng: random.Random, when: date) -> None:
    if change.kind == "role_started":
        change_job(state.roles, rng, when)
    elif change.kind == "role_ended":
        end_role(state.roles, when)
    elif change.kind == "role_changed":
        change_role(state.roles, rng)
    else:
        change_other(state, rng)


def _location(rng: random.Random) -> dict[str, Any]:
    return _location_of(rng.choice(PLACES))


def _location_of(place: Place) -> dict[str, Any]:
    address = ", ".join(part for part in (place.city, place.state, place.country) if part)
    return {
        "location_raw_address": address,
        "location_full": address,
        "location_country": place.country,
        "location_regions": list(place.regions),
        "location_city": place.city,
        "location_state": place.state,
        "location_country_iso_2": place.iso2,
        "location_country_iso_3": place.iso3,
    }


def _skills(rng: random.Random, dept: Department) -> list[str]:
    own = rng.sample(dept.skills, k=rng.randint(2, min(5, len(dept.skills))))
    return own + rng.sample(GENERAL_SKILLS, k=rng.randint(0, 3))


def _current_job(roles: list[Role], as_of: date, tail: str) -> dict[str, Any]:
    open_roles = [role for role in roles if role.date_to is None]
    current = open_roles[-1] if open_roles else None
    months = sum(role_months(role, as_of) for role in roles)
    latest = current or roles[-1]
    headline = f"{latest.title} at {COMPANIES[latest.company].name}"
    return {
        "headline": headline,
        "generated_headline": f"{headline} | {tail}",
        "is_working": int(current is not None),
        "company_id": company_id(current.company) if current else None,
        "job_title": current.title if current else None,
        "management_level": current.level if current else None,
        "is_decision_maker": int(current is not None and current.level in DECISION_MAKER_LEVELS),
        "department": current.department.name if current else None,
        "job_description": (f"{current.title} in the {current.department.name} team." if current else None),
        "total_experience_duration": format_duration(months),
        "total_experience_duration_months": months,
    }


def _format_date(day: date, date_format: DateFormat) -> str:
    if date_format == "date":
        return day.isoformat()
    return f"{day.isoformat()}T00:00:00.000Z"


# Field order of spec §5.1, so documents read like real responses.
_FIELD_ORDER = (
    "id", "public_profile_id", "full_name", "name_first", "name_middle", "name_last", "headline",
    "generated_headline", "websites_linkedin", "websites_professional_network", "shorthand_names",
    "last_updated", "is_deleted", "is_hidden", "picture_url", "description",
    "location_raw_address", "location_full", "location_country", "location_regions",
    "location_city", "location_state", "location_country_iso_2", "location_country_iso_3",
    "connections_count", "follower_count", "is_working", "company_id", "job_title",
    "management_level", "is_decision_maker", "department", "job_description",
    "total_experience_duration", "total_experience_duration_months", "experience", "education",
    "skills",
)  # fmt: skip


def _ordered(doc: dict[str, Any]) -> dict[str, Any]:
    ordered = {name: doc.pop(name) for name in _FIELD_ORDER if name in doc}
    ordered.update(doc)
    return ordered
