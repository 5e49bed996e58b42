"""Retry delays: exponential backoff with jitter; a provider's Retry-After is honoured, within bounds."""

from __future__ import annotations

from envoi.delivery.retry import retry_delay
from envoi.outbound import retry_after_seconds
from envoi.settings import Settings

SETTINGS = Settings(retry_base_delay=30, retry_max_delay=3600)


def test_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    assert [retry_delay(n, SETTINGS, rng=lambda: 0.0) for n in (1, 2, 3)] == [15, 30, 60]
    assert [retry_delay(n, SETTINGS, rng=lambda: 1.0) for n in (1, 2, 3)] == [30, 60, 120]
    assert retry_delay(30, SETTINGS, rng=lambda: 1.0) == 3600


def test_retry_after_is_honoured_but_never_beyond_the_maximum_delay() -> None:
    assert retry_delay(1, SETTINGS, at_least=600, rng=lambda: 0.0) == 600
    # A hostile or broken server's "come back in 30,000 years" must not overflow a date or park the event.
    assert retry_delay(1, SETTINGS, at_least=999_999_999_999, rng=lambda: 0.0) == 3600


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # a date in the past: now
    assert retry_after_seconds("\u00b2") is None  # a digit to str.isdigit(), not to float()
    assert retry_after_seconds("99999999999999") is None
    assert retry_after_seconds("soon") is None
