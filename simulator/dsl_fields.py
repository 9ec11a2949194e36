"""The searchable fields of Coresignal's `employee_clean` index (spec §3.4) and how to read them.

Only fields listed here may appear in a query; anything else is a 400, as the real API answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from simulator.dsl_base import Doc


class Kind(Enum):
    TEXT = "text"  # analysed: queries see lowercase word tokens
    KEYWORD = "keyword"  # whole value, case-sensitive
    # Whole value; `term` is exact but full-text queries ignore case. The spec only says
    # location_country is "keyword-ish", and users type "united states" in match queries.
    FOLDED = "folded"
    NUMBER = "number"
    DATE = "date"


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # as written in queries, e.g. "experience.title.exact"
    kind: Kind
    path: str | None  # the nested path that owns the field, None for top-level fields
    keys: tuple[str, ...]  # document keys holding the value, in order of preference

    def read(self, doc: Doc) -> list[Any]:
        """The field's non-null values; arrays are flattened because ES indexes each element."""
        for key in self.keys:
            value = doc.get(key)
            if value is not None:
                items = value if isinstance(value, list) else [value]
                return [item for item in items if item is not None]
        return []


# "+exact" adds the `<name>.exact` keyword sub-field the vendor maps next to most text fields.
_MAPPING: dict[str | None, dict[str, str]] = {
    None: {
        "id": "number",
        "company_id": "number",
        "full_name": "text+exact",
        "name_first": "text+exact",
        "name_middle": "text+exact",
        "name_last": "text+exact",
        "websites_professional_network": "text+exact",
        "job_title": "text+exact",
        "description": "text",
        "headline": "text",
        "management_level": "keyword",
        "department": "keyword",
        "is_decision_maker": "number",
        "is_working": "number",
        "is_deleted": "number",
        "is_hidden": "number",
        "location_country": "folded",
        "location_regions": "keyword",
        "skills": "text",
        "last_updated": "date",
    },
    "experience": {
        "company_id": "number",
        "company_name": "text+exact",
        "company_professional_network_url": "text+exact",
        "company_shorthand_name": "text+exact",
        "company_website": "text+exact",
        "title": "text+exact",
        # Analysed inside experience, unlike the top-level keyword fields of the same names.
        "department": "text+exact",
        "management_level": "text+exact",
        "date_from": "date",
        "date_to": "date",
        "duration": "text+exact",
        "location": "text+exact",
        "order_in_profile": "number",
        "description": "text+exact",
    },
    "education": {
        "institution_name": "text+exact",
        "degree": "text+exact",
        "date_from_year": "number",
        "date_to_year": "number",
    },
}

# The docs and the ES mapping say *_professional_network*, live documents say *_linkedin*; both
# spellings are accepted in queries and either key is read from the document.
_SYNONYMS: dict[tuple[str | None, str], str] = {
    (None, "websites_professional_network"): "websites_linkedin",
    ("experience", "company_professional_network_url"): "company_linkedin_url",
}

NESTED_PATHS = frozenset(path for path in _MAPPING if path is not None)


def _spellings(path: str | None, key: str) -> list[tuple[str, tuple[str, ...]]]:
    """(name accepted in queries, document keys to read) pairs for one mapped field."""
    synonym = _SYNONYMS.get((path, key))
    if synonym is None:
        return [(key, (key,))]
    # The spelling used in the query is read first, the other one as a fallback.
    return [(key, (key, synonym)), (synonym, (synonym, key))]


def _build() -> dict[str, Field]:
    fields: dict[str, Field] = {}
    for path, table in _MAPPING.items():
        prefix = "" if path is None else f"{path}."
        for key, spec in table.items():
            kind = Kind(spec.removesuffix("+exact"))
            for name, keys in _spellings(path, key):
                fields[prefix + name] = Field(prefix + name, kind, path, keys)
                if spec.endswith("+exact"):
                    exact = f"{prefix}{name}.exact"
                    fields[exact] = Field(exact, Kind.KEYWORD, path, keys)
    return fields


FIELDS: dict[str, Field] = _build()
