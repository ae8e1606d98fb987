"""What a provider's rate-limit headers say, read as the limiter uses them."""

from __future__ import annotations

import pytest

from tributary_shared.core.admission import (
    RateLimitObservation,
    RateLimits,
    parse_duration_s,
    read_rate_limit_headers,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("20ms", 0.02),
        ("6m0s", 360.0),
        ("1h2m3.5s", 3723.5),
        ("12.5", 12.5),
        (" 2S ", 2.0),
        ("", None),
        ("soon", None),
        ("1x", None),
        ("s1", None),
        ("-3", None),
    ],
)
def test_durations_in_the_formats_providers_send(text: str, seconds: float | None) -> None:
    assert parse_duration_s(text) == (None if seconds is None else pytest.approx(seconds))


def test_an_openai_style_answer_gives_limits_and_what_remains() -> None:
    observed = read_rate_limit_headers(
        {
            "X-RateLimit-Limit-Requests": "60",
            "x-ratelimit-remaining-requests": "59",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "149984",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert observed == RateLimitObservation(
        limits=RateLimits(requests_per_minute=60, tokens_per_minute=150000),
        remaining_requests=59,
        remaining_tokens=149984,
    )


def test_what_remains_is_worked_out_from_the_reset_when_not_sent() -> None:
    observed = read_rate_limit_headers(
        {"x-ratelimit-limit-requests": "60", "x-ratelimit-reset-requests": "30s"}
    )
    assert observed.remaining_requests == 30  # half a minute from full at one a second


def test_retry_after_in_milliseconds_wins_over_seconds_and_dates_are_ignored() -> None:
    both = read_rate_limit_headers({"retry-after-ms": "1500", "retry-after": "2"})
    assert both.retry_after_s == pytest.approx(1.5)
    dated = read_rate_limit_headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert dated.retry_after_s is None


def test_unreadable_or_missing_headers_say_nothing() -> None:
    assert read_rate_limit_headers({}).empty
    garbled = read_rate_limit_headers(
        {"x-ratelimit-limit-requests": "lots", "x-ratelimit-remaining-requests": "-1"}
    )
    assert garbled.empty
