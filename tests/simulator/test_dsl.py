"""Specification of the simulator's es_dsl compiler (`simulator.dsl`), clause by clause.

Four hand-written profiles; every test states which of them a query must return.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from simulator.dsl import CompiledQuery, QueryError, check_limits, compile_body, leaf_count
from simulator.dsl_values import parse_date_bound

NOW = datetime(2025, 10, 1, tzinfo=UTC)

ALICE: dict[str, Any] = {
    "id": 1,
    "full_name": "Alice Smith",
    "name_first": "Alice",
    "name_middle": None,
    "name_last": "Smith",
    "job_title": "Senior Software Engineer",
    "headline": "Building data platforms at Acme",
    "description": "I love distributed systems.",
    "management_level": "Senior",
    "department": "Engineering and Technical",
    "is_working": 1,
    "is_decision_maker": 0,
    "is_deleted": 0,
    "is_hidden": 0,
    "location_country": "United States",
    "location_regions": ["Northern America", "AMER"],
    "skills": ["python", "machine learning", "kubernetes"],
    "last_updated": "2025-09-12T00:00:00.000Z",
    "websites_linkedin": "https://www.linkedin.com/in/alice-smith",
    "company_id": 100,
    "experience": [
        {
            "title": "CTO",
            "company_name": "Acme Corp",
            "company_id": 100,
            "company_linkedin_url": "linkedin.com/company/acme",
            "management_level": "C-Level",
            "date_from": "2023-01-01",
            "date_to": None,
            "order_in_profile": 1,
        },
        {
            "title": "Software Engineer",
            "company_name": "Beta Labs",
            "company_id": 200,
            "company_linkedin_url": "linkedin.com/company/beta-labs",
            "date_from": "2018-05-01",
            "date_to": "2022-12-01",
            "order_in_profile": 2,
        },
    ],
    "education": [
        {
            "institution_name": "MIT",
            "degree": "BSc Computer Science",
            "date_from_year": 2010,
            "date_to_year": 2014,
        }
    ],
}
BOB: dict[str, Any] = {
    "id": 2,
    "full_name": "Bob Jones",
    "name_middle": "",
    "job_title": "Engineering Manager",
    "headline": "",
    "description": None,
    "management_level": "Manager",
    "department": "Engineering and Technical",
    "is_working": 1,
    "is_decision_maker": 1,
    "location_country": "Germany",
    "location_regions": ["Europe", "EMEA"],
    "skills": [],
    "last_updated": "2023-07-29",
    "websites_professional_network": "https://www.linkedin.com/in/bob-jones",
    "company_id": 200,
    "experience": [
        {
            "title": "Engineering Manager",
            "company_name": "Beta Labs",
            "company_professional_network_url": "linkedin.com/company/beta-labs",
            "date_from": "2022-01-01",
            "date_to": None,
        },
        {"title": "CTO", "company_name": "Gamma", "date_from": "2015-01", "date_to": "2021-12-31"},
    ],
    "education": [],
}
CAROL: dict[str, Any] = {
    "id": 3,
    "full_name": "Carol White",
    "job_title": "Sales Director",
    "headline": "Sales leader | B2B SaaS",
    "management_level": "Director",
    "department": "Sales",
    "is_working": 0,
    "location_country": "united states",
    "location_regions": [],
    "skills": ["Sales", "negotiation"],
    "last_updated": "2024-12-31",
    "experience": [],
}
DAN: dict[str, Any] = {"id": 4, "last_updated": None, "job_title": None, "experience": None}
PROFILES = [ALICE, BOB, CAROL, DAN]


def compiled(query: object, **body: object) -> CompiledQuery:
    return compile_body({"query": query, **body}, now=NOW)


def hits(query: object, profiles: list[dict[str, Any]] = PROFILES) -> list[int]:
    predicate = compiled(query).predicate
    return [profile["id"] for profile in profiles if predicate(profile)]


def rejected(body: object, status: int = 400) -> str:
    with pytest.raises(QueryError) as caught:
        compile_body(body, now=NOW)
    assert caught.value.status == status
    return caught.value.reason


def rejected_query(query: object) -> str:
    return rejected({"query": query})


def nested(query: object, path: str = "experience") -> dict[str, Any]:
    return {"nested": {"path": path, "query": query}}


# --- request body -------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [[], "query", None, 5])
def test_a_body_that_is_not_an_object_is_422(body: object) -> None:
    assert "JSON object" in rejected(body, status=422)


def test_query_is_required() -> None:
    assert rejected({"sort": ["id"]}) == "'query' is required"


@pytest.mark.parametrize("key", ["aggs", "aggregations"])
def test_aggregations_are_rejected(key: str) -> None:
    assert rejected({"query": {"match_all": {}}, key: {}}) == "aggregations are not supported"


def test_unknown_body_keys_are_rejected() -> None:
    reason = rejected({"query": {"match_all": {}}, "highlight": {}})
    assert reason == "unsupported request key 'highlight'"


def test_no_op_body_keys_are_accepted() -> None:
    body = {"size": 5, "_source": ["id"], "from": 10, "track_total_hits": True}
    assert hits({"match_all": {}}) == [1, 2, 3, 4]
    assert compiled({"match_all": {}}, **body).predicate(ALICE)


@pytest.mark.parametrize("query", [None, [], {}, {"term": {}, "match": {}}])
def test_query_must_be_one_clause_object(query: object) -> None:
    assert "exactly one key" in rejected_query(query)


def test_unsupported_clause_is_named() -> None:
    reason = rejected_query({"fuzzy": {"job_title": "enginer"}})
    assert reason == "unsupported query clause 'fuzzy' (at query)"


def test_errors_name_the_clause_path() -> None:
    query = {"bool": {"must": [{"match_all": {}}, {"term": {"foo.bar": "x"}}]}}
    assert rejected_query(query) == "unknown field 'foo.bar' (at query.bool.must[1].term)"


# --- sort ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "mode"),
    [
        (["id"], "id"),
        ("id", "id"),
        ([{"id": "asc"}], "id"),
        ([{"id": {"order": "asc"}}], "id"),
        ({"id": "asc"}, "id"),
        (["_score"], "_score"),
        ("_score", "_score"),
        ([{"_score": "desc"}], "_score"),
        ([{"_score": {"order": "desc"}}], "_score"),
    ],
)
def test_supported_sorts(sort: object, mode: str) -> None:
    assert compiled({"match_all": {}}, sort=sort).sort == mode


def test_no_sort_means_default() -> None:
    assert compiled({"match_all": {}}).sort == "default"


@pytest.mark.parametrize(
    "sort",
    [
        [{"id": "desc"}],
        [{"_score": "asc"}],
        ["last_updated"],
        ["id", "_score"],
        [],
        None,
        5,
        [{"id": {"order": "asc", "mode": "min"}}],
    ],
)
def test_other_sorts_are_rejected(sort: object) -> None:
    assert rejected({"query": {"match_all": {}}, "sort": sort}).startswith("unsupported sort")


# --- term / terms -------------------------------------------------------------------------------


def test_term_on_text_field_compares_with_lowercase_tokens() -> None:
    assert hits({"term": {"job_title": "engineer"}}) == [1]
    assert hits({"term": {"job_title": "Engineer"}}) == []
    assert hits({"term": {"job_title": "senior software engineer"}}) == []


def test_term_on_exact_subfield_is_whole_value_and_case_sensitive() -> None:
    assert hits({"term": {"job_title.exact": "Senior Software Engineer"}}) == [1]
    assert hits({"term": {"job_title.exact": "senior software engineer"}}) == []
    assert hits({"term": {"job_title.exact": "Engineer"}}) == []


def test_term_on_keyword_field() -> None:
    assert hits({"term": {"management_level": "Senior"}}) == [1]
    assert hits({"term": {"management_level": "senior"}}) == []
    assert hits({"term": {"management_level": {"value": "Manager", "boost": 2}}}) == [2]


def test_term_case_insensitive_option() -> None:
    term = {"management_level": {"value": "senior", "case_insensitive": True}}
    assert hits({"term": term}) == [1]


def test_term_on_numbers() -> None:
    assert hits({"term": {"company_id": 200}}) == [2]
    assert hits({"term": {"company_id": "200"}}) == [2]
    assert hits({"term": {"is_working": 0}}) == [3]
    assert "expects a number" in rejected_query({"term": {"is_working": True}})
    assert "expects a number" in rejected_query({"term": {"company_id": "abc"}})


def test_term_on_dates_compares_instants() -> None:
    assert hits({"term": {"last_updated": "2023-07-29"}}) == [2]
    assert hits({"term": {"last_updated": "2023-07-29T00:00:00.000Z"}}) == [2]
    assert hits({"term": {"last_updated": "2025-09-12"}}) == [1]


def test_term_matches_any_array_element() -> None:
    assert hits({"term": {"location_regions": "EMEA"}}) == [2]
    assert hits({"term": {"skills": "learning"}}) == [1]


def test_location_country_term_is_exact() -> None:
    assert hits({"term": {"location_country": "United States"}}) == [1]


def test_terms() -> None:
    assert hits({"terms": {"management_level": ["Senior", "Director"]}}) == [1, 3]
    assert hits({"terms": {"company_id": [100, 200], "boost": 1.0}}) == [1, 2]
    assert hits({"terms": {"management_level": []}}) == []


@pytest.mark.parametrize(
    "clause",
    [
        {"terms": {"management_level": "Senior"}},
        {"terms": {"management_level": {"index": "x", "id": "1", "path": "y"}}},
        {"terms": {"management_level": ["Senior"], "department": ["Sales"]}},
        {"term": {"management_level": {"value": "Senior", "fuzziness": 2}}},
        {"term": {"management_level": {"case_insensitive": True}}},
        {"term": {"management_level": {"value": "x", "case_insensitive": "yes"}}},
        {"term": {"management_level": None}},
        {"term": "Senior"},
    ],
)
def test_malformed_term_clauses_are_400(clause: object) -> None:
    rejected_query(clause)


# --- match / match_phrase -----------------------------------------------------------------------


def test_match_is_analysed_with_or_by_default() -> None:
    assert hits({"match": {"job_title": "Software MANAGER"}}) == [1, 2]
    assert hits({"match": {"job_title": {"query": "software manager", "operator": "and"}}}) == []
    assert hits({"match": {"job_title": {"query": "engineer senior", "operator": "AND"}}}) == [1]


def test_match_on_text_array_field() -> None:
    assert hits({"match": {"skills": "Machine"}}) == [1]
    assert hits({"match": {"skills": {"query": "sales negotiation", "operator": "and"}}}) == [3]


def test_match_on_keyword_field_is_whole_value_exact() -> None:
    assert hits({"match": {"department": "Sales"}}) == [3]
    assert hits({"match": {"department": "sales"}}) == []
    assert hits({"match": {"department": "Engineering"}}) == []


def test_match_on_location_country_ignores_case() -> None:
    assert hits({"match": {"location_country": "UNITED STATES"}}) == [1, 3]
    assert hits({"match": {"location_country": "united"}}) == []


def test_match_on_number_field() -> None:
    assert hits({"match": {"is_decision_maker": "1"}}) == [2]


def test_match_without_tokens_matches_nothing() -> None:
    assert hits({"match": {"job_title": "!!!"}}) == []


@pytest.mark.parametrize(
    "clause",
    [
        {"match": {"job_title": {"query": "x", "operator": "xor"}}},
        {"match": {"job_title": {"query": "x", "fuzziness": "AUTO"}}},
        {"match": {"job_title": {"operator": "and"}}},
        {"match": {"job_title": ["a", "b"]}},
        {"match_phrase": {"job_title": {"query": "a b", "slop": 2}}},
    ],
)
def test_malformed_match_clauses_are_400(clause: object) -> None:
    rejected_query(clause)


def test_match_phrase_needs_contiguous_tokens_in_order() -> None:
    assert hits({"match_phrase": {"job_title": "software engineer"}}) == [1]
    assert hits({"match_phrase": {"job_title": {"query": "Senior Software"}}}) == [1]
    assert hits({"match_phrase": {"job_title": "engineer software"}}) == []
    assert hits({"match_phrase": {"job_title": "senior engineer"}}) == []
    assert hits({"match_phrase": {"headline": "sales leader"}}) == [3]


def test_match_phrase_does_not_span_array_elements() -> None:
    assert hits({"match_phrase": {"skills": "learning kubernetes"}}) == []
    assert hits({"match_phrase": {"skills": "machine learning"}}) == [1]


# --- query_string -------------------------------------------------------------------------------


def qs(query: str, **options: object) -> list[int]:
    return hits({"query_string": {"query": query, **options}})


def test_query_string_field_terms_and_and() -> None:
    assert qs("job_title:engineer AND management_level:Senior") == [1]
    assert qs("job_title:engineer AND management_level:Manager") == []


def test_query_string_and_binds_tighter_than_or() -> None:
    # Senior OR (Manager AND not working): Bob is working, so only Alice.
    assert qs("management_level:Senior OR management_level:Manager AND is_working:0") == [1]
    assert qs("(management_level:Senior OR management_level:Manager) AND is_working:0") == []


def test_query_string_not_binds_tightest() -> None:
    assert qs("NOT management_level:Senior AND is_working:1") == [2]
    assert qs("NOT (management_level:Senior AND is_working:1)") == [2, 3, 4]


def test_query_string_symbol_operators() -> None:
    assert qs("management_level:Senior || management_level:Director && is_working:0") == [1, 3]
    assert qs("!management_level:Senior && is_working:1") == [2]


def test_query_string_implicit_not_means_and_not() -> None:
    assert qs("is_working:1 NOT management_level:Senior") == [2]


def test_query_string_phrases() -> None:
    assert qs('job_title:"software engineer"') == [1]
    assert qs('job_title:"engineer software"') == []
    assert qs('department:"Engineering and Technical" AND is_decision_maker:1') == [2]
    assert qs('websites_linkedin.exact:"https://www.linkedin.com/in/alice-smith"') == [1]


def test_query_string_default_field_and_operator() -> None:
    assert qs("manager", default_field="job_title") == [2]
    assert qs("software manager", default_field="job_title") == [1, 2]
    assert qs("software manager", default_field="job_title", default_operator="AND") == []
    assert qs("senior engineer", default_field="job_title", default_operator="and") == [1]


def test_query_string_field_groups() -> None:
    assert qs("management_level:(Senior OR Director)") == [1, 3]
    assert qs("job_title:(senior engineer)", default_operator="AND") == [1]


def test_query_string_wildcards_and_exists() -> None:
    assert qs("job_title:eng*") == [1, 2]
    assert qs("job_title.exact:Sales*") == [3]
    assert qs("websites_linkedin:*") == [1, 2]


def test_query_string_escapes() -> None:
    url = r"https\:\/\/www.linkedin.com\/in\/alice-smith"
    assert qs(f"websites_linkedin.exact:{url}") == [1]
    assert qs(r"job_title.exact:Sales\ Director") == [3]  # an escaped space stays in the word


def test_query_string_inside_nested_sees_item_fields() -> None:
    query = "experience.title:cto AND experience.company_name:acme"
    assert hits(nested({"query_string": {"query": query}})) == [1]
    assert hits({"query_string": {"query": query}}) == []


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"query": "(job_title:cto"}, "expected ')'"),
        ({"query": "job_title:cto)"}, "unexpected ')'"),
        ({"query": "job_title:cto AND"}, "unexpected end"),
        ({"query": "job_title:"}, "unexpected end"),
        ({"query": "job_title:enginer~2"}, "unsupported query_string syntax"),
        ({"query": "job_title:/eng.*/"}, "unsupported query_string syntax"),
        ({"query": "job_title:cto^2"}, "unsupported query_string syntax"),
        ({"query": "company_id:[1 TO 5]"}, "unsupported query_string syntax"),
        ({"query": "company_id:>5"}, "unsupported query_string syntax"),
        ({"query": "-job_title:cto"}, "unsupported query_string syntax"),
        ({"query": "cto"}, "no field and no default_field"),
        ({"query": "foo:bar"}, "unknown field 'foo'"),
        ({"query": "x", "default_field": "foo"}, "unknown field 'foo'"),
        ({"query": 'job_title:"cto'}, "unterminated"),
        ({"query": "x", "default_field": "job_title", "default_operator": "XOR"}, "AND' or 'OR"),
        ({"query": "x", "fields": ["job_title"]}, "unsupported option 'fields'"),
        ({"default_field": "job_title"}, "needs a 'query' string"),
        ({"query": "(" * 40 + "cto" + ")" * 40, "default_field": "job_title"}, "deeper"),
    ],
)
def test_query_string_errors(options: dict[str, Any], reason: str) -> None:
    assert reason in rejected_query({"query_string": options})


# --- range --------------------------------------------------------------------------------------


def test_range_on_numbers() -> None:
    assert hits({"range": {"company_id": {"gte": 150}}}) == [2]
    assert hits({"range": {"company_id": {"gt": 100, "lte": 200}}}) == [2]
    assert hits({"range": {"company_id": {"gte": 100, "lt": 200}}}) == [1]
    assert hits({"range": {"company_id": {"gte": "99.5"}}}) == [1, 2]


def test_range_on_dates_parses_both_formats() -> None:
    assert hits({"range": {"last_updated": {"gte": "2024-01-01"}}}) == [1, 3]
    assert hits({"range": {"last_updated": {"lt": "2024-12-31"}}}) == [2]
    assert hits({"range": {"last_updated": {"lte": "2024-12-31T00:00:00Z"}}}) == [2, 3]
    assert hits({"range": {"last_updated": {"gte": "2025-09-12T00:00:00.000Z"}}}) == [1]
    assert hits({"range": {"last_updated": {"gt": "2025-09-12T00:00:00.000Z"}}}) == []
    assert hits({"range": {"last_updated": {"gte": "2024"}}}) == [1, 3]


def test_range_with_relative_dates() -> None:
    # NOW is 2025-10-01: now-1y is 2024-10-01, now-3y is 2022-10-01.
    assert hits({"range": {"last_updated": {"gte": "now-1y"}}}) == [1, 3]
    assert hits({"range": {"last_updated": {"gte": "now-3y", "lte": "now"}}}) == [1, 2, 3]
    assert hits({"range": {"last_updated": {"gte": "now-2M"}}}) == [1]
    assert hits({"range": {"last_updated": {"gte": "now-3w"}}}) == [1]
    assert hits({"range": {"last_updated": {"gte": "now-274d"}}}) == [1, 3]
    assert hits({"range": {"last_updated": {"lt": "now-1y-2d"}}}) == [2]


def test_date_math_units_and_month_ends() -> None:
    end_of_march = datetime(2025, 3, 31, 12, tzinfo=UTC)
    assert parse_date_bound("now-1M", end_of_march) == datetime(2025, 2, 28, 12, tzinfo=UTC)
    assert parse_date_bound("now+1y", NOW) == datetime(2026, 10, 1, tzinfo=UTC)
    assert parse_date_bound("now-5h", NOW) == datetime(2025, 9, 30, 19, tzinfo=UTC)
    assert parse_date_bound("now-1d+30m", NOW) == datetime(2025, 9, 30, 0, 30, tzinfo=UTC)
    assert parse_date_bound("now/d", NOW) is None


def test_range_on_nested_dates_and_keywords() -> None:
    started_before_2019 = {"range": {"experience.date_from": {"lt": "2019-01-01"}}}
    assert hits(nested(started_before_2019)) == [1, 2]
    assert hits({"range": {"management_level": {"gte": "M", "lt": "T"}}}) == [1, 2]


@pytest.mark.parametrize(
    ("clause", "reason"),
    [
        ({"last_updated": {"gte": "yesterday"}}, "invalid 'gte' bound"),
        ({"last_updated": {"gte": "now/d"}}, "invalid 'gte' bound"),
        ({"company_id": {"gte": "abc"}}, "invalid 'gte' bound"),
        ({"last_updated": {"gte": "2024-01-01", "format": "yyyy"}}, "unsupported range option"),
        ({"company_id": 5}, "needs an object"),
        ({"nope": {"gte": 1}}, "unknown field 'nope'"),
    ],
)
def test_range_errors(clause: object, reason: str) -> None:
    assert reason in rejected_query({"range": clause})


# --- exists -------------------------------------------------------------------------------------


def test_exists_ignores_missing_null_and_empty_values() -> None:
    assert hits({"exists": {"field": "headline"}}) == [1, 3]
    assert hits({"exists": {"field": "name_middle"}}) == []
    assert hits({"exists": {"field": "skills"}}) == [1, 3]
    assert hits({"exists": {"field": "location_regions"}}) == [1, 2]
    assert hits({"exists": {"field": "last_updated"}}) == [1, 2, 3]


@pytest.mark.parametrize("clause", [{}, {"field": 5}, {"field": "headline", "x": 1}, "headline"])
def test_malformed_exists_is_400(clause: object) -> None:
    rejected_query({"exists": clause})


# --- wildcard -----------------------------------------------------------------------------------


def test_wildcard_on_exact_is_case_sensitive_whole_value() -> None:
    assert hits({"wildcard": {"job_title.exact": "Senior*"}}) == [1]
    assert hits({"wildcard": {"job_title.exact": "senior*"}}) == []
    folded = {"value": "senior*", "case_insensitive": True}
    assert hits({"wildcard": {"job_title.exact": folded}}) == [1]
    assert hits({"wildcard": {"full_name.exact": "B?b Jones"}}) == [2]


def test_wildcard_on_text_matches_tokens_ignoring_case() -> None:
    assert hits({"wildcard": {"job_title": "ENG*"}}) == [1, 2]
    assert hits({"wildcard": {"job_title": "?ales"}}) == [3]
    assert hits({"wildcard": {"job_title": "software eng*"}}) == []


def test_wildcard_on_folded_and_keyword_fields() -> None:
    assert hits({"wildcard": {"location_country": "UNITED*"}}) == [1, 3]
    assert hits({"wildcard": {"location_regions": "*MEA"}}) == [2]


def test_wildcard_escapes_and_long_patterns() -> None:
    star = {"id": 9, "job_title": "5* hotel", "full_name": "a" * 5000}
    assert hits({"wildcard": {"job_title.exact": r"5\* *"}}, [star, CAROL]) == [9]
    assert hits({"wildcard": {"job_title.exact": r"5\**"}}, [{"id": 8, "job_title": "55"}]) == []
    started = time.perf_counter()
    assert hits({"wildcard": {"full_name.exact": "*a" * 40 + "*b"}}, [star]) == []
    assert time.perf_counter() - started < 1.0


def test_wildcard_needs_a_string_field_and_pattern() -> None:
    assert "text or keyword" in rejected_query({"wildcard": {"company_id": "1*"}})
    assert "must be a string" in rejected_query({"wildcard": {"job_title": 5}})


# --- match_all / match_none ---------------------------------------------------------------------


def test_match_all_and_match_none() -> None:
    assert hits({"match_all": {}}) == [1, 2, 3, 4]
    assert hits({"match_all": {"boost": 1.2}}) == [1, 2, 3, 4]
    assert hits({"match_none": {}}) == []
    assert "empty object" in rejected_query({"match_all": {"x": 1}})


# --- bool ---------------------------------------------------------------------------------------


def test_bool_must_filter_must_not() -> None:
    query = {
        "bool": {
            "must": [{"match": {"department": "Engineering and Technical"}}],
            "filter": {"term": {"is_working": 1}},
            "must_not": [{"term": {"management_level": "Manager"}}],
        }
    }
    assert hits(query) == [1]


def test_bool_should_alone_needs_one_match() -> None:
    should = [{"term": {"management_level": "Senior"}}, {"term": {"management_level": "Director"}}]
    assert hits({"bool": {"should": should}}) == [1, 3]


def test_bool_should_is_optional_next_to_must_or_filter() -> None:
    should = {"term": {"management_level": "Director"}}
    assert hits({"bool": {"must": {"term": {"is_working": 1}}, "should": should}}) == [1, 2]
    assert hits({"bool": {"filter": {"term": {"is_working": 1}}, "should": should}}) == [1, 2]


SKILL_SHOULDS = [
    {"match": {"job_title": "engineer"}},
    {"match": {"job_title": "senior"}},
    {"match": {"job_title": "manager"}},
]


@pytest.mark.parametrize(
    ("msm", "expected"),
    [
        (1, [1, 2]),
        (2, [1]),
        ("2", [1]),
        ("-1", [1]),
        ("66%", [1, 2]),
        ("67%", [1]),
        ("-67%", [1, 2]),
    ],
)
def test_bool_minimum_should_match(msm: object, expected: list[int]) -> None:
    query = {"bool": {"should": SKILL_SHOULDS, "minimum_should_match": msm}}
    assert hits(query) == expected


def test_minimum_should_match_percentages_round_down() -> None:
    assert hits({"bool": {"should": SKILL_SHOULDS, "minimum_should_match": "100%"}}) == []
    assert hits({"bool": {"should": SKILL_SHOULDS, "minimum_should_match": "-34%"}}) == [1]
    # ES truncates 3 * -33 / 100 to 0 and so requires nothing; a should-only bool then still
    # needs one matching clause.
    assert hits({"bool": {"should": SKILL_SHOULDS, "minimum_should_match": "-33%"}}) == [1, 2]
    assert hits({"bool": {"should": SKILL_SHOULDS, "minimum_should_match": 0}}) == [1, 2]
    filtered = {"filter": {"exists": {"field": "last_updated"}}, "should": SKILL_SHOULDS}
    assert hits({"bool": {**filtered, "minimum_should_match": 0}}) == [1, 2, 3]


def test_minimum_should_match_above_clause_count_matches_nothing() -> None:
    assert hits({"bool": {"should": SKILL_SHOULDS, "minimum_should_match": 4}}) == []


def test_minimum_should_match_applies_next_to_filter() -> None:
    query = {
        "bool": {
            "filter": {"term": {"is_working": 1}},
            "should": SKILL_SHOULDS,
            "minimum_should_match": 1,
        }
    }
    assert hits(query) == [1, 2]


def test_empty_bool_matches_everything() -> None:
    assert hits({"bool": {}}) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"bool": {"must": {}, "shoud": []}}, "unsupported bool key 'shoud'"),
        ({"bool": {"should": SKILL_SHOULDS, "minimum_should_match": "3<90%"}}, "minimum_should"),
        ({"bool": {"should": SKILL_SHOULDS, "minimum_should_match": True}}, "minimum_should"),
        ({"bool": {"must": "term"}}, "exactly one key"),
        ({"bool": []}, "bool takes an object"),
    ],
)
def test_bool_errors(query: object, reason: str) -> None:
    assert reason in rejected_query(query)


def test_deep_nesting_is_rejected_not_a_crash() -> None:
    query: dict[str, Any] = {"match_all": {}}
    for _ in range(200):
        query = {"bool": {"must": query}}
    assert "nested deeper than" in rejected_query(query)


# --- nested -------------------------------------------------------------------------------------


def test_nested_conditions_must_hold_on_the_same_item() -> None:
    cto_at_beta = {
        "bool": {
            "must": [
                {"match": {"experience.title": "cto"}},
                {"match": {"experience.company_name": "beta"}},
            ]
        }
    }
    assert hits(nested(cto_at_beta)) == []
    cto_at_acme = {
        "bool": {
            "must": [
                {"match": {"experience.title": "cto"}},
                {"match": {"experience.company_name": "acme"}},
            ]
        }
    }
    assert hits(nested(cto_at_acme)) == [1]


def test_nested_current_role() -> None:
    current_cto = {
        "bool": {
            "must": {"term": {"experience.title.exact": "CTO"}},
            "must_not": {"exists": {"field": "experience.date_to"}},
        }
    }
    assert hits(nested(current_cto)) == [1]


def test_experience_fields_outside_nested_match_nothing() -> None:
    assert hits({"term": {"experience.title": "cto"}}) == []
    assert hits({"exists": {"field": "experience.title"}}) == []
    assert hits({"bool": {"must_not": {"term": {"experience.title": "cto"}}}}) == [1, 2, 3, 4]


def test_top_level_fields_inside_nested_match_nothing() -> None:
    assert hits(nested({"term": {"management_level": "Senior"}})) == []


def test_experience_management_level_is_analysed() -> None:
    assert hits(nested({"match": {"experience.management_level": "c-level"}})) == [1]
    assert hits(nested({"term": {"experience.management_level": "level"}})) == [1]


def test_education_is_nested_too() -> None:
    mit_2010 = {
        "bool": {
            "must": [
                {"match": {"education.institution_name": "mit"}},
                {"range": {"education.date_from_year": {"lte": 2010}}},
            ]
        }
    }
    assert hits(nested(mit_2010, path="education")) == [1]
    assert hits(nested({"match": {"education.degree": "computer"}}, path="experience")) == []


def test_nested_tolerates_missing_or_odd_item_lists() -> None:
    odd = [
        {"id": 5, "experience": {"title": "CTO"}},
        {"id": 6, "experience": ["CTO", None]},
        {"id": 7, "experience": "CTO"},
    ]
    assert hits(nested({"match": {"experience.title": "cto"}}), odd) == [5]
    assert hits(nested({"match_all": {}})) == [1, 2]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (nested({"match_all": {}}, path="member_experience"), "unknown nested path"),
        (nested({"term": {"experience.foo": "x"}}), "unknown field 'experience.foo'"),
        (nested(nested({"match_all": {}}, path="education")), "cannot be used inside nested"),
        ({"nested": {"path": "experience"}}, "nested takes"),
        ({"nested": {"path": "experience", "query": {}, "x": 1}}, "unsupported nested key"),
        (
            {"nested": {"path": "experience", "query": {"match_all": {}}, "score_mode": "top"}},
            "unsupported score_mode",
        ),
        ({"term": {"experience": "x"}}, "unknown field 'experience'"),
    ],
)
def test_nested_errors(query: object, reason: str) -> None:
    assert reason in rejected_query(query)


# --- the websites_linkedin / *_professional_network aliases -------------------------------------


def test_websites_alias_reads_either_document_key() -> None:
    bob_url = "https://www.linkedin.com/in/bob-jones"
    alice_url = "https://www.linkedin.com/in/alice-smith"
    assert hits({"term": {"websites_linkedin.exact": bob_url}}) == [2]
    assert hits({"term": {"websites_professional_network.exact": alice_url}}) == [1]
    assert hits({"match": {"websites_linkedin": "alice"}}) == [1]
    assert hits({"exists": {"field": "websites_professional_network"}}) == [1, 2]


def test_the_queried_spelling_is_preferred_when_a_document_has_both() -> None:
    both = {"id": 7, "websites_linkedin": "new", "websites_professional_network": "old"}
    assert hits({"term": {"websites_linkedin.exact": "new"}}, [both]) == [7]
    assert hits({"term": {"websites_professional_network.exact": "old"}}, [both]) == [7]
    half = {"id": 8, "websites_linkedin": None, "websites_professional_network": "old"}
    assert hits({"term": {"websites_linkedin.exact": "old"}}, [half]) == [8]


def test_company_url_alias_inside_experience() -> None:
    beta = "linkedin.com/company/beta-labs"
    for name in ("company_linkedin_url", "company_professional_network_url"):
        assert hits(nested({"term": {f"experience.{name}.exact": beta}})) == [1, 2]


# --- scores -------------------------------------------------------------------------------------


def test_scores_count_matching_should_and_must_terms() -> None:
    query = compiled({"bool": {"should": SKILL_SHOULDS}})
    assert query.score(ALICE) == 2.0
    assert query.score(BOB) == 1.0
    assert query.score(CAROL) == 0.0
    assert compiled({"match": {"job_title": "senior software"}}).score(ALICE) == 2.0


def test_score_is_constant_when_nothing_scores() -> None:
    assert compiled({"match_all": {}}).score(BOB) == 1.0
    assert compiled({"bool": {"filter": {"term": {"is_working": 1}}}}).score(ALICE) == 1.0
    assert compiled({"term": {"management_level": "Senior"}}).score(ALICE) == 1.0


def test_nested_score_averages_matching_items_by_default() -> None:
    inner = {"match": {"experience.title": "cto engineer software"}}
    assert compiled(nested(inner)).score(ALICE) == 1.5  # CTO scores 1, Software Engineer 2
    with_max = {"nested": {"path": "experience", "query": inner, "score_mode": "max"}}
    assert compiled(with_max).score(ALICE) == 2.0


def test_evaluate_combines_predicate_and_score() -> None:
    query = compiled({"bool": {"should": SKILL_SHOULDS}})
    assert [query.evaluate(p) for p in PROFILES] == [2.0, 1.0, None, None]


def test_scoring_is_deterministic() -> None:
    query = compiled({"bool": {"should": SKILL_SHOULDS}})
    assert [query.score(p) for p in PROFILES] == [query.score(p) for p in PROFILES]


# --- limits -------------------------------------------------------------------------------------


def flat_bool(clauses: int) -> dict[str, Any]:
    return {"query": {"bool": {"should": [{"term": {"id": i}} for i in range(clauses)]}}}


def test_payload_limit_is_15000_characters() -> None:
    body: dict[str, Any] = {"query": {"match_all": {}}}
    check_limits(json.dumps(body).ljust(15_000), body)
    with pytest.raises(QueryError) as caught:
        check_limits(json.dumps(body).ljust(15_001), body)
    assert caught.value.status == 400
    assert caught.value.reason == "query payload exceeds 15000 characters"


def test_clause_limit_is_1024() -> None:
    check_limits("{}", flat_bool(1024))
    with pytest.raises(QueryError) as caught:
        check_limits("{}", flat_bool(1025))
    assert caught.value.status == 400
    assert "1025 clauses" in caught.value.reason


def test_leaf_count_counts_leaves_and_compound_bool_sub_clauses() -> None:
    assert leaf_count({"query": {"term": {"id": 1}}}) == 1
    assert leaf_count(flat_bool(3)) == 3
    inner_bool = {"bool": {"must": [{"term": {"id": 1}}, {"term": {"id": 2}}]}}
    assert leaf_count({"query": {"bool": {"must": inner_bool, "filter": {"match_all": {}}}}}) == 4
    nested_body = {"query": {"bool": {"must": [nested(inner_bool), {"exists": {"field": "id"}}]}}}
    assert leaf_count(nested_body) == 4


@pytest.mark.parametrize("body", [None, [], {}, {"query": 5}, {"query": {"bool": 5}}])
def test_leaf_count_tolerates_malformed_bodies(body: object) -> None:
    assert leaf_count(body) <= 1


def test_leaf_count_handles_very_deep_bodies() -> None:
    query: dict[str, Any] = {"term": {"id": 1}}
    for _ in range(5000):
        query = {"bool": {"must": query}}
    assert leaf_count({"query": query}) == 5000
