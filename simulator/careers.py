"""Work history of a synthetic employee: roles, job changes, and their §5.2 rendering.

Roles are kept oldest first while building (dates are easier to reason about) and rendered most
recent first, as the API orders `experience[]`. Dates are month starts: the API only knows
months for roles.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from simulator.wordlists import (
    COMPANIES,
    DEPARTMENTS,
    MANAGEMENT_LEVELS,
    PLACES,
    Company,
    Department,
)

Naming = Literal["real", "docs"]

COMPANY_ID_BASE = 9_000_000
_LEVELS = [level for level, _ in MANAGEMENT_LEVELS]
_LEVEL_WEIGHTS = [weight for _, weight in MANAGEMENT_LEVELS]


@dataclass(slots=True)
class Role:
    company: int  # index into COMPANIES
    department: Department
    level: str
    title: str
    date_from: date
    date_to: date | None  # None = the open (current) role


def company_id(company: int) -> int:
    return COMPANY_ID_BASE + 13 * company


def month_start(day: date) -> date:
    return day.replace(day=1)


def add_months(day: date, months: int) -> date:
    total = day.year * 12 + day.month - 1 + months
    return date(total // 12, total % 12 + 1, 1)


def months_between(start: date, end: date) -> int:
    # Counted inclusively, like profile pages do: Jan-Mar is 3 months.
    return max(1, (end.year - start.year) * 12 + end.month - start.month + 1)


def format_duration(months: int) -> str:
    years, rest = divmod(months, 12)
    parts = []
    if years:
        parts.append(f"{years} year{'s' if years > 1 else ''}")
    if rest or not years:
        parts.append(f"{rest} month{'s' if rest != 1 else ''}")
    return " ".join(parts)


def job_title(rng: random.Random, level: str, dept: Department) -> str:
    specialist = rng.choice(dept.titles)
    titles = {
        "Specialist": specialist,
        "Senior": f"Senior {specialist}",
        "Intern": f"{specialist} Intern",
        "Manager": f"{dept.function} Manager",
        "Director": f"Director of {dept.function}",
        "Head": f"Head of {dept.function}",
        "President/Vice President": f"Vice President of {dept.function}",
        "C-Level": dept.chief,
    }
    return titles.get(level, level)  # Owner, Founder and Partner are titles of their own


def new_role(rng: random.Random, dept: Department, start: date, end: date | None) -> Role:
    level = rng.choices(_LEVELS, _LEVEL_WEIGHTS)[0]
    return Role(rng.randrange(len(COMPANIES)), dept, level, job_title(rng, level, dept), start, end)


def initial_career(rng: random.Random, dept: Department, as_of: date, *, working: bool) -> list[Role]:
    """1-5 consecutive roles ending at `as_of`; the newest stays open when `working`."""
    count = rng.choices((1, 2, 3, 4, 5), (30, 35, 20, 10, 5))[0]
    end: date | None = None if working else add_months(month_start(as_of), -rng.randint(1, 12))
    start = add_months(end or month_start(as_of), -rng.randint(2, 48))
    roles = []
    for _ in range(count):
        role_dept = dept if rng.random() < 0.8 else rng.choice(DEPARTMENTS)
        roles.append(new_role(rng, role_dept, start, end))
        end = add_months(start, -rng.randint(0, 3))
        start = add_months(end, -rng.randint(6, 48))
    roles.reverse()
    return roles


def change_job(roles: list[Role], rng: random.Random, when: date) -> None:
    """The employee closes the open role (if any) and starts a new one at another company."""
    start = month_start(when)
    for role in roles:
        if role.date_to is None:
            role.date_to = max(role.date_from, add_months(start, -1))
    current = roles[-1].company if roles else -1
    dept = roles[-1].department if roles and rng.random() < 0.8 else rng.choice(DEPARTMENTS)
    role = new_role(rng, dept, start, None)
    if role.company == current:
        role.company = (role.company + 1) % len(COMPANIES)
    roles.append(role)


def role_months(role: Role, as_of: date) -> int:
    return months_between(role.date_from, role.date_to or month_start(as_of))


def render_experience(roles: list[Role], naming: Naming) -> list[dict[str, Any]]:
    newest_first = list(reversed(roles))
    return [_render_role(role, order, naming) for order, role in enumerate(newest_first, start=1)]


def _render_role(role: Role, order: int, naming: Naming) -> dict[str, Any]:
    months = months_between(role.date_from, role.date_to) if role.date_to else None
    item: dict[str, Any] = {
        "title": role.title,
        "description": f"{role.title} in the {role.department.name} team." if order == 1 else None,
        "order_in_profile": order,
        "location": _place_name(COMPANIES[role.company].hq),
        "department": role.department.name,
        "management_level": role.level,
        "date_from": role.date_from.isoformat(),
        "date_from_year": role.date_from.year,
        "date_from_month": role.date_from.month,
        "date_to": role.date_to.isoformat() if role.date_to else None,
        "date_to_year": role.date_to.year if role.date_to else None,
        "date_to_month": role.date_to.month if role.date_to else None,
        "duration": format_duration(months) if months else None,
        "duration_months": months,
    }
    item.update(company_fields(role.company, naming))
    return item


def company_fields(index: int, naming: Naming) -> dict[str, Any]:
    """The flattened `company_*` enrichment carried by every experience item."""
    company: Company = COMPANIES[index]
    hq = PLACES[company.hq]
    url_field = "company_linkedin_url" if naming == "real" else "company_professional_network_url"
    return {
        "company_id": company_id(index),
        "company_name": company.name,
        "company_type": company.kind,
        "company_founded": company.founded,
        "company_size_range": company.size_range,
        "company_size_employees_count": company.employees,
        "company_industry": company.industry,
        "company_website": f"https://www.{company.domain}",
        url_field: f"https://www.linkedin.com/company/{company.slug}",
        "company_location_hq_full_address": _place_name(company.hq),
        "company_location_hq_country": hq.country,
        "company_location_hq_country_iso2": hq.iso2,
    }


def _place_name(index: int) -> str:
    place = PLACES[index]
    return ", ".join(part for part in (place.city, place.state, place.country) if part)
