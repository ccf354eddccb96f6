"""Which failed turns are limits to wait out, and for how long."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from agentproxy.rate_limits import BACKOFF_CAP_S, Limit, limit_of, pause_s

NOW = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("status", "error_type", "text"),
    [
        (429, "", "API Error: 429 Rate limited"),
        (529, "", "API Error: 529"),
        (500, "overloaded_error", "API Error: 500 Overloaded. This is a server-side issue"),
        (None, "", "Claude AI usage limit reached|1764068400"),
        (None, "", "You've hit your limit · resets 3pm (Europe/Paris)"),
        (None, "", "5-hour limit reached ∙ resets 11am"),
        (None, "", "Request rejected: too many requests"),
    ],
)
def test_limits_are_recognised(status: int | None, error_type: str, text: str) -> None:
    assert limit_of(status, error_type, text, None, NOW) is not None


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (500, "API Error: 500 Internal server error"),
        (400, "invalid_request_error: prompt is too long"),
        (None, "error_max_turns"),
    ],
)
def test_other_failures_are_not_limits(status: int | None, text: str) -> None:
    assert limit_of(status, "", text, None, NOW) is None


def test_an_epoch_after_a_bar_is_the_reset_time() -> None:
    limit = limit_of(None, "", f"Claude AI usage limit reached|{int(NOW) + 1800}", None, NOW)
    assert limit is not None and limit.resets_at == NOW + 1800
    assert pause_s(limit, 1, 30, NOW) == pytest.approx(1800)


def test_a_time_of_day_in_a_zone_is_the_next_such_time() -> None:
    limit = limit_of(None, "", "You've hit your limit · resets 3pm (Europe/Paris)", None, NOW)
    assert limit is not None and limit.resets_at is not None
    reset = dt.datetime.fromtimestamp(limit.resets_at, dt.timezone.utc)
    assert reset == dt.datetime(2026, 11, 25, 14, 0, tzinfo=dt.timezone.utc)  # 15:00 in Paris, CET


def test_a_time_already_past_today_is_tomorrow() -> None:
    limit = limit_of(None, "", "limit reached, resets 9am (UTC)", None, NOW)
    assert limit is not None and limit.resets_at == NOW + 23 * 3600


def test_a_rejected_rate_limit_event_gives_the_reset_time() -> None:
    limit = limit_of(429, "rate_limit_error", "Rate limited", NOW + 120, NOW)
    assert limit is not None and limit.resets_at == NOW + 120


def test_without_a_reset_time_the_pause_backs_off_with_jitter_and_a_cap() -> None:
    limit = Limit(reason="429")
    rng = random.Random(7)
    waits = [pause_s(limit, n, 10, NOW, rng) for n in range(1, 12)]
    assert 8 <= waits[0] <= 12 and 16 <= waits[1] <= 24
    assert all(w <= BACKOFF_CAP_S * 1.2 for w in waits)
    assert waits[-1] >= BACKOFF_CAP_S * 0.8
