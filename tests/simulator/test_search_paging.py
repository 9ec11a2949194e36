"""Specification of es_dsl search pagination (`simulator.search_paging`), spec §3.2-3.3."""

from __future__ import annotations

import pytest

from simulator.dsl import QueryError
from simulator.search_paging import Match, clamp_items_per_page, page, page_sorted, sort_matches

# (id, score, last_updated), deliberately not in any sort order.
MATCHES: list[Match] = [
    (30, 1.0, "2025-03-15T00:00:00.000Z"),
    (10, 3.5, "2024-01-01"),
    (50, 1.0, None),
    (20, 3.5, "2025-03-15"),
    (40, 2.0, "2023-06-30T12:00:00Z"),
]


def walk(matches: list[Match], sort: str, per_page: int) -> tuple[list[list[int]], list[str]]:
    """Follows the cursors to the end; returns every page's ids and every cursor seen."""
    pages: list[list[int]] = []
    cursors: list[str] = []
    after: str | None = None
    while True:
        result = page(matches, sort, after, per_page)
        pages.append(result.ids)
        if result.next_after is None:
            return pages, cursors
        cursors.append(result.next_after)
        after = result.next_after


def rejected_cursor(sort: str, after: str) -> None:
    with pytest.raises(QueryError) as caught:
        page(MATCHES, sort, after, 2)
    assert caught.value.status == 400
    assert caught.value.reason == "invalid 'after' cursor"


# --- items_per_page -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 1000), ("1", 1), ("250", 250), ("1000", 1000), ("007", 7), ("1001", 1000)],
)
def test_items_per_page_defaults_to_and_is_capped_at_1000(raw: str | None, expected: int) -> None:
    assert clamp_items_per_page(raw) == expected


def test_huge_items_per_page_is_clamped() -> None:
    assert clamp_items_per_page("9" * 5000) == 1000


@pytest.mark.parametrize("raw", ["0", "000", "-1", "-0", "abc", "", "1.5", " 5", "1_000", "+5"])
def test_items_per_page_must_be_a_positive_integer(raw: str) -> None:
    with pytest.raises(QueryError) as caught:
        clamp_items_per_page(raw)
    assert caught.value.status == 400
    assert "items_per_page" in caught.value.reason


# --- ordering and cursor formats ----------------------------------------------------------------


def test_sort_by_id_uses_the_last_id_as_cursor() -> None:
    pages, cursors = walk(MATCHES, "id", 2)
    assert pages == [[10, 20], [30, 40], [50]]
    assert cursors == ["20", "40"]


def test_default_sort_is_last_updated_then_id_with_a_dated_cursor() -> None:
    pages, cursors = walk(MATCHES, "default", 2)
    # "2025-03-15" and "2025-03-15T00:00:00.000Z" are the same instant, so id breaks the tie;
    # a profile without last_updated comes last.
    assert pages == [[40, 10], [20, 30], [50]]
    assert cursors == ['"2024-01-01",10', '"2025-03-15T00:00:00.000Z",30']


def test_default_cursor_matches_the_documented_shape() -> None:
    matches: list[Match] = [(25828893, 1.0, "2025-03-15T00:00:00.000Z"), (25828894, 1.0, None)]
    assert page(matches, "default", None, 1).next_after == '"2025-03-15T00:00:00.000Z",25828893'


def test_undated_profiles_write_null_in_the_cursor() -> None:
    matches: list[Match] = [(1, 1.0, None), (2, 1.0, "not a date"), (3, 1.0, None)]
    pages, cursors = walk(matches, "default", 1)
    assert pages == [[1], [2], [3]]
    assert cursors == ["null,1", "null,2"]


def test_score_sort_is_score_descending_then_id() -> None:
    pages, cursors = walk(MATCHES, "_score", 2)
    assert pages == [[10, 20], [40, 30], [50]]
    assert cursors == ['3.5,"2025-03-15",20', '1.0,"2025-03-15T00:00:00.000Z",30']


def test_score_cursor_matches_the_documented_shape() -> None:
    matches: list[Match] = [(6428995, 26.806067, "2025-02-25"), (1, 0.5, None)]
    assert page(matches, "_score", None, 1).next_after == '26.806067,"2025-02-25",6428995'


def test_score_cursor_round_trips_scores_exactly() -> None:
    third = 1 / 3
    matches: list[Match] = [(1, third, None), (2, third, None), (3, third, None)]
    pages, _ = walk(matches, "_score", 1)
    assert pages == [[1], [2], [3]]


@pytest.mark.parametrize("sort", ["id", "default", "_score"])
@pytest.mark.parametrize("per_page", [1, 2, 3, 5, 1000])
def test_walking_all_pages_returns_every_match_once(sort: str, per_page: int) -> None:
    pages, _ = walk(MATCHES, sort, per_page)
    ids = [employee_id for ids in pages for employee_id in ids]
    assert sorted(ids) == [10, 20, 30, 40, 50]
    assert len(pages) == page(MATCHES, sort, None, per_page).total_pages


# --- page metadata ------------------------------------------------------------------------------


def test_totals_describe_the_whole_result_on_every_page() -> None:
    first = page(MATCHES, "id", None, 2)
    last = page(MATCHES, "id", "40", 2)
    for result in (first, last):
        assert (result.total_results, result.total_pages) == (5, 3)


def test_last_page_has_no_cursor() -> None:
    assert page(MATCHES, "id", "20", 3).next_after is None
    assert page(MATCHES, "id", None, 5).next_after is None
    assert page(MATCHES, "id", None, 1000).next_after is None


def test_empty_result() -> None:
    result = page([], "default", None, 1000)
    assert result.ids == []
    assert result.next_after is None
    assert (result.total_results, result.total_pages) == (0, 0)


def test_total_pages_is_the_ceiling() -> None:
    many: list[Match] = [(i, 1.0, None) for i in range(1, 2002)]
    assert page(many, "id", None, 1000).total_pages == 3
    assert page(many[:2000], "id", None, 1000).total_pages == 2


# --- strictly-after semantics -------------------------------------------------------------------


def test_cursor_is_strictly_after_its_key_even_if_that_match_is_gone() -> None:
    without_20 = [match for match in MATCHES if match[0] != 20]
    assert page(without_20, "id", "20", 2).ids == [30, 40]
    assert page(without_20, "id", "25", 2).ids == [30, 40]


def test_matches_appearing_before_the_cursor_are_not_repeated() -> None:
    grown = [*MATCHES, (15, 9.0, "2020-01-01")]
    assert page(grown, "id", "20", 10).ids == [30, 40, 50]
    assert page(grown, "_score", '3.5,"2025-03-15",20', 10).ids == [40, 30, 50]
    assert page(grown, "default", '"2024-01-01",10', 10).ids == [20, 30, 50]


def test_a_cursor_past_the_end_gives_an_empty_last_page() -> None:
    result = page(MATCHES, "id", "999", 2)
    assert (result.ids, result.next_after, result.total_results) == ([], None, 5)


def test_default_cursor_date_may_use_another_format_of_the_same_instant() -> None:
    assert page(MATCHES, "default", '"2025-03-15T00:00:00Z",20', 10).ids == [30, 50]


# --- bad cursors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sort", "after"),
    [
        ("id", ""),
        ("id", "abc"),
        ("id", "5.0"),
        ("id", "true"),
        ("id", '"5"'),
        ("id", '"2025-01-01",5'),
        ("id", "1],[2"),
        ("default", "5"),
        ("default", '"not a date",5'),
        ("default", '"2025-01-01",5.5'),
        ("default", '"2025-01-01",5,6'),
        ("_score", '"2025-01-01",5'),
        ("_score", '1.0,"2025-01-01"'),
        ("_score", 'NaN,"2025-01-01",5'),
        ("_score", '1e400,"2025-01-01",5'),
        ("_score", 'true,"2025-01-01",5'),
        ("_score", "1.0,5,5"),
    ],
)
def test_unreadable_cursors_are_400(sort: str, after: str) -> None:
    rejected_cursor(sort, after)


def test_score_cursor_accepts_an_integer_score_and_a_null_date() -> None:
    assert page(MATCHES, "_score", "2,null,0", 10).ids == [40, 30, 50]


def test_programming_errors_are_not_query_errors() -> None:
    with pytest.raises(ValueError, match="items_per_page"):
        page(MATCHES, "id", None, 0)
    with pytest.raises(ValueError, match="sort"):
        page(MATCHES, "relevance", None, 10)


@pytest.mark.parametrize("sort", ["id", "default", "_score"])
def test_paging_a_presorted_list_is_the_same_as_paging_the_matches(sort: str) -> None:
    ordered = sort_matches(MATCHES, sort)
    for after in (None, page(MATCHES, sort, None, 2).next_after):
        assert page_sorted(ordered, sort, after, 2) == page(MATCHES, sort, after, 2)
