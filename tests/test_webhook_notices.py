"""The notice body's shape, our idempotency keys and the capability tokens (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobs.webhook_notices import (
    Notice,
    NoticeShapeError,
    TooManyNoticesError,
    inbox_id,
    new_token,
    notice_key,
    parse_notices,
    plausible_token,
    receiver_url,
    same_hash,
    token_hash,
)


def test_the_documented_bodies_parse() -> None:
    assert parse_notices(b'[{"member_id": 7, "status": "changed"}]', 10) == [Notice(7, "changed")]
    profile = b'[{"member_id": 7, "status": "changed", "changed_fields": ["headline"]}]'
    assert parse_notices(profile, 10) == [Notice(7, "changed")]


@pytest.mark.parametrize(
    "body",
    [b"", b"  ", b"null", b"{}", b"[]", b"[1]", b'[{"member_id": true, "status": "changed"}]',
     b'[{"member_id": 0, "status": "changed"}]', b'[{"member_id": 1, "status": ""}]',
     b'[{"member_id": 1, "status": "changed", "changed_fields": "x"}]', b"\xff", b"[NaN]"],
)  # fmt: skip
def test_anything_else_is_refused(body: bytes) -> None:
    with pytest.raises(NoticeShapeError):
        parse_notices(body, 10)


def test_too_many_notices_is_its_own_error() -> None:
    with pytest.raises(TooManyNoticesError):
        parse_notices(b'[{"member_id": 1, "status": "a"}, {"member_id": 2, "status": "a"}]', 1)


def test_a_member_is_one_key_per_status_and_iso_week() -> None:
    monday, sunday = datetime(2026, 11, 30, tzinfo=UTC), datetime(2026, 12, 6, 23, tzinfo=UTC)
    next_monday = datetime(2026, 12, 7, tzinfo=UTC)
    notice = Notice(7, "changed")
    assert notice_key(notice, monday) == notice_key(notice, sunday) == "7:changed:2026-W49"
    assert notice_key(notice, next_monday) != notice_key(notice, monday)
    assert inbox_id("s1", b"[1]") != inbox_id("s2", b"[1]")  # per subscription


def test_tokens_are_random_url_safe_and_only_their_hash_is_compared() -> None:
    token = new_token()
    assert plausible_token(token) and token != new_token()
    assert same_hash(token_hash(token), token_hash(token))
    assert not same_hash(token_hash(token), token_hash(token + "x"))
    assert receiver_url("https://h.example/", token) == f"https://h.example/v1/webhooks/coresignal/{token}"
    assert not plausible_token("../../etc") and not plausible_token("short")
