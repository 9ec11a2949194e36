"""The smaller collections of a profile: education (§5.3) and the mostly-empty lists of §5.1.

Sub-fields the spec marks as unconfirmed (languages, courses, certifications, awards,
publications) use plausible names; clients should treat them as opaque.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date
from typing import Any

from simulator.wordlists import (
    CERTIFICATIONS,
    DEGREES,
    FIRST_NAMES,
    LANGUAGES,
    LAST_NAMES,
    PLACES,
    PROFICIENCIES,
    SCHOOLS,
)


def person_extras(rng: random.Random, *, first_role_start: date) -> dict[str, Any]:
    recommendations = _recommendations(rng)
    return {
        "education": _education(rng, first_role_start.year),
        "recommendations_count": len(recommendations),
        "recommendations": recommendations,
        "languages": _languages(rng),
        "courses": _maybe(rng, 0.2, lambda: [{"title": "Machine Learning", "order_in_profile": 1}]),
        "certifications": _certifications(rng),
        "awards": _maybe(rng, 0.1, lambda: [_award(rng)]),
        "publications": _maybe(rng, 0.05, lambda: [_publication(rng)]),
        "organizations": _maybe(rng, 0.1, lambda: [_organization(rng)]),
        "patents": _maybe(rng, 0.02, lambda: [_patent(rng)]),
        "activity": _activity(rng),
    }


def _maybe(
    rng: random.Random, chance: float, make: Callable[[], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    return make() if rng.random() < chance else []


def _education(rng: random.Random, career_start_year: int) -> list[dict[str, Any]]:
    items = []
    end_year = career_start_year
    for order in range(1, rng.choice((0, 0, 1, 1, 1, 2)) + 1):
        school = rng.choice(SCHOOLS)
        place = PLACES[school.place]
        start_year = end_year - rng.randint(2, 4)
        items.append(
            {
                "degree": rng.choice(DEGREES),
                "description": None,
                "institution_name": school.name,
                "institution_url": f"https://www.linkedin.com/school/{school.slug}/",
                "institution_full_address": f"{place.city}, {place.country}",
                "institution_country_iso2": place.iso2,
                "institution_country_iso3": place.iso3,
                "institution_regions": list(place.regions),
                "institution_city": place.city,
                "institution_state": place.state,
                "institution_street": None,
                "institution_zipcode": None,
                "date_from_year": start_year,
                "date_to_year": end_year,
                "activities_and_societies": None,
                "order_in_profile": order,
            }
        )
        end_year = start_year
    return items


def _recommendations(rng: random.Random) -> list[dict[str, Any]]:
    items = []
    for order in range(1, rng.choice((0, 0, 0, 1, 2)) + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        items.append(
            {
                "recommendation": "A reliable colleague who gets things done.",
                "referee_name": f"{first.capitalize()} {last.capitalize()}",
                # No base36 suffix, so a referee URL never resolves to a simulated profile.
                "referee_url": f"https://www.linkedin.com/in/{first}-{last}",
                "order_in_profile": order,
            }
        )
    return items


def _languages(rng: random.Random) -> list[dict[str, Any]]:
    chosen = rng.sample(LANGUAGES, k=rng.randint(0, 3))
    return [
        {"language": name, "proficiency": rng.choice(PROFICIENCIES), "order_in_profile": order}
        for order, name in enumerate(chosen, start=1)
    ]


def _certifications(rng: random.Random) -> list[dict[str, Any]]:
    chosen = rng.sample(CERTIFICATIONS, k=rng.choice((0, 0, 1, 2)))
    return [
        {
            "title": title,
            "issuer": issuer,
            "date_year": 2015 + rng.randrange(10),
            "order_in_profile": order,
        }
        for order, (title, issuer) in enumerate(chosen, start=1)
    ]


def _award(rng: random.Random) -> dict[str, Any]:
    return {
        "title": "Employee of the Year",
        "issuer": "Company",
        "date_year": 2016 + rng.randrange(9),
        "order_in_profile": 1,
    }


def _publication(rng: random.Random) -> dict[str, Any]:
    return {
        "title": "Notes on Distributed Systems",
        "publisher": "Medium",
        "date_year": 2016 + rng.randrange(9),
        "publication_url": None,
        "order_in_profile": 1,
    }


def _organization(rng: random.Random) -> dict[str, Any]:
    year, month = 2012 + rng.randrange(12), rng.randint(1, 12)
    return {
        "organization": "IEEE",
        "position": "Member",
        "description": None,
        "date_from": f"{year}-{month:02d}",
        "date_from_year": year,
        "date_from_month": month,
        "date_to": None,
        "date_to_year": None,
        "date_to_month": None,
        "order_in_profile": 1,
    }


def _patent(rng: random.Random) -> dict[str, Any]:
    year = 2010 + rng.randrange(15)
    return {
        "title": "Method for synchronising replicated records",
        "status": "Issued",
        "inventors": [],
        "date": f"{year}-01-01",
        "date_year": year,
        "date_month": 1,
        "date_day": 1,
        "patent_url": None,
        "description": None,
        "patent_or_application_number": f"US{rng.randrange(10**7, 10**8)}B2",
        "order_in_profile": 1,
    }


def _activity(rng: random.Random) -> list[dict[str, Any]]:
    return [
        {
            "activity_url": f"https://www.linkedin.com/feed/update/{rng.randrange(10**12)}",
            "title": "Excited to share our latest release!",
            "action": rng.choice(("Liked by", "Shared by", "Posted by")),
            "order_in_profile": order,
        }
        for order in range(1, rng.choice((0, 0, 1, 2)) + 1)
    ]
