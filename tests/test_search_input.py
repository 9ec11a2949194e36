"""A search body is checked before anything is charged: JSON, shape, size and clause count."""

from __future__ import annotations

import json

import pytest

from jobs.search_input import MAX_CLAUSES, count_clauses, parse_search_body, validate_search_body
from worker.errors import InputError


def terms(n: int) -> dict[str, object]:
    return {"bool": {"should": [{"term": {"id": i}} for i in range(n)]}}


def test_a_valid_body_passes_unchanged() -> None:
    body = {"query": {"term": {"location_country": "Germany"}}, "sort": ["id"]}
    assert parse_search_body(json.dumps(body)) == body


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"query": {"term": ', "not valid JSON: line 1 column"),
        ("[1, 2]", "must be a JSON object"),
        ('{"sort": ["id"]}', "non-empty 'query'"),
        ('{"query": {}}', "non-empty 'query'"),
        ('{"query": {"match_all": {}}, "aggs": {}}', "aggregations"),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_search_body(text)


def test_bodies_over_15000_characters_are_refused() -> None:
    body = {"query": {"terms": {"full_name": ["x" * 100] * 150}}}
    with pytest.raises(InputError, match="at most 15000"):
        validate_search_body(body)


def test_the_clause_limit_is_1024() -> None:
    assert count_clauses(terms(MAX_CLAUSES)) == MAX_CLAUSES
    validate_search_body({"query": terms(600)})
    # (1,024 clauses never fit in 15,000 characters; the clause count is reported first.)
    with pytest.raises(InputError, match="1025 clauses"):
        validate_search_body({"query": terms(MAX_CLAUSES + 1)})


def test_clauses_inside_nested_and_deep_bools_are_counted() -> None:
    query = {
        "bool": {
            "must": {
                "nested": {"path": "experience", "query": {"bool": {"filter": [{"term": {"a": 1}}] * 3}}}
            },
            "must_not": [{"exists": {"field": "x"}}],
        }
    }
    assert count_clauses(query) == 4


def test_very_deep_nesting_does_not_crash_the_counter() -> None:
    query: dict[str, object] = {"term": {"id": 1}}
    for _ in range(5000):
        query = {"bool": {"must": [query]}}
    assert count_clauses(query) == 1
