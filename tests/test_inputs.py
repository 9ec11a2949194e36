"""Producer input: ids, shorthand names and profile URLs, with line numbers for every bad line."""

from __future__ import annotations

import io

import pytest

from jobs.inputs import MAX_LINE_BYTES, Item, Rejected, normalise_name, parse_lines, read_lines
from worker.errors import InputError


def parse(data: bytes, kind: str) -> list[Item | Rejected]:
    return list(parse_lines(read_lines(io.BytesIO(data)), kind))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("john-doe", "john-doe"),
        ("  John-Doe  ", "john-doe"),
        ("https://www.linkedin.com/in/john-doe/", "john-doe"),
        ("http://linkedin.com/in/john-doe?trk=abc", "john-doe"),
        ("www.linkedin.com/in/john_doe/details/experience/", "john_doe"),
        ("https://de.linkedin.com/in/j%C3%BCrgen-m%C3%BCller", "jürgen-müller"),
    ],
)
def test_names_and_urls_normalise_to_the_shorthand_name(raw: str, expected: str) -> None:
    assert normalise_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "ab",
        "a b c",
        "https://example.com/in/john-doe",
        "https://www.linkedin.com/company/acme",
        "---",
        "x" * 101,
    ],
)
def test_bad_names_are_refused(raw: str) -> None:
    with pytest.raises(InputError):
        normalise_name(raw)


def test_invalid_name_lines_are_reported_with_their_line_numbers_and_valid_ones_kept() -> None:
    data = b"# header comment\njohn-doe\n\nnot a name\nhttps://evil.example/in/x\njane-roe\n"
    records = parse(data, "names")
    assert records == [
        Item(2, "name:john-doe"),
        Rejected(4, "not a name", records[1].reason),  # type: ignore[union-attr]
        Rejected(5, "https://evil.example/in/x", "not a linkedin.com profile URL"),
        Item(6, "name:jane-roe"),
    ]
    assert "shorthand name" in str(records[1])
    assert str(records[1]).startswith("line 4:")


def test_ids_must_be_positive_integers_in_range() -> None:
    records = parse(b"42\n-5\n0\nabc\n99999999999999999999999\n 7 \n", "ids")
    assert [r.key for r in records if isinstance(r, Item)] == ["id:42", "id:7"]
    assert [(r.line, r.value) for r in records if isinstance(r, Rejected)] == [
        (2, "-5"),
        (3, "0"),
        (4, "abc"),
        (5, "99999999999999999999999"),
    ]


def test_binary_and_overlong_lines_are_rejected_without_losing_their_neighbours() -> None:
    data = b"1\n\xff\xfe\x00garbage\n" + b"9" * (MAX_LINE_BYTES * 3) + b"\n2\n"
    records = parse(data, "ids")
    assert [r.key for r in records if isinstance(r, Item)] == ["id:1", "id:2"]
    rejected = [r for r in records if isinstance(r, Rejected)]
    assert [r.line for r in rejected] == [2, 3]
    assert "UTF-8" in rejected[0].reason
    assert "longer than" in rejected[1].reason


def test_windows_line_endings_are_accepted() -> None:
    assert parse(b"1\r\n2\r\n", "ids") == [Item(1, "id:1"), Item(2, "id:2")]


def test_a_value_urllib_cannot_split_is_a_rejected_line_not_a_crash() -> None:
    # Found by schemathesis: a stray '[' made urlsplit raise "Invalid IPv6 URL" (an HTTP 500).
    (record,) = parse_lines([(1, "x [@y/in/z")], "names")
    assert isinstance(record, Rejected) and "not a profile URL" in record.reason
