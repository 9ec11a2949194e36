"""The sliding one-second window, driven by explicit arrival times (no real clock)."""

from __future__ import annotations

from simulator.ratelimit import SlidingWindowLimiter, WindowStats

KEY = "k" * 32


def accepted(limiter: SlidingWindowLimiter, now: float, limit: int = 3) -> bool:
    return limiter.check(KEY, "collect", limit, now).accepted


def test_n_per_second_then_429_until_the_window_slides() -> None:
    limiter = SlidingWindowLimiter()
    assert [accepted(limiter, t) for t in (0.0, 0.25, 0.5)] == [True, True, True]
    assert not accepted(limiter, 0.75)
    assert not accepted(limiter, 0.999)
    # (0.0, 1.0] no longer holds the request from t=0.0.
    assert accepted(limiter, 1.0)
    # (0.125, 1.125] still holds 0.25, 0.5 and 1.0.
    assert not accepted(limiter, 1.125)
    assert accepted(limiter, 1.25)
    stats = limiter.stats()[(KEY, "collect")]
    assert stats == WindowStats(
        accepted=5, rejected_429=3, max_in_any_second=3, first_accepted_s=0.0, last_accepted_s=1.25
    )
    assert stats.accepted_rps == 4 / 1.25  # four intervals between five accepted arrivals


def test_rejected_requests_do_not_extend_the_lockout() -> None:
    limiter = SlidingWindowLimiter()
    assert accepted(limiter, 0.0, limit=1)
    for t in (0.25, 0.5, 0.75, 0.99):
        assert not accepted(limiter, t, limit=1)
    assert accepted(limiter, 1.0, limit=1)


def test_remaining_counts_down_within_the_window() -> None:
    limiter = SlidingWindowLimiter()
    remaining = [limiter.check(KEY, "collect", 3, t).remaining for t in (0.0, 0.1, 0.2, 0.3)]
    assert remaining == [2, 1, 0, 0]


def test_keys_and_endpoint_classes_have_separate_windows() -> None:
    limiter = SlidingWindowLimiter()
    assert limiter.check("a", "collect", 1, 0.0).accepted
    assert limiter.check("b", "collect", 1, 0.0).accepted
    assert limiter.check("a", "search", 1, 0.0).accepted
    assert not limiter.check("a", "collect", 1, 0.5).accepted


def test_max_in_any_second_is_the_busiest_sliding_window() -> None:
    limiter = SlidingWindowLimiter()
    # Spread so that the busiest one-second window, e.g. (0.05, 1.05], holds exactly 3.
    for t in (0.0, 0.1, 0.6, 1.05, 1.2, 2.5):
        limiter.check(KEY, "collect", 10, t)
    assert limiter.stats()[(KEY, "collect")].max_in_any_second == 3


def test_out_of_order_arrivals_never_let_more_through() -> None:
    limiter = SlidingWindowLimiter()
    assert accepted(limiter, 0.5, limit=2)
    assert accepted(limiter, 0.2, limit=2)  # checked late: counted as arriving at 0.5
    assert not accepted(limiter, 1.4, limit=2)
    assert accepted(limiter, 1.5, limit=2)


def test_reset_forgets_windows_and_counts() -> None:
    limiter = SlidingWindowLimiter()
    assert accepted(limiter, 0.0, limit=1)
    limiter.reset()
    assert limiter.stats() == {}
    assert accepted(limiter, 0.1, limit=1)
