"""The fast path for everyday addresses agrees with the full validator."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from envoi.addresses import normalize_email, normalize_phone

ADDRESSES = [
    "Ada@Example.COM",
    "customer1@bench.example",
    "a.b+tag@sub.example.co.uk",
    "o'hara@example.ie",
    "x@localhost",
    "a..b@example.com",
    ".a@example.com",
    "é@example.com",
    "a@b.c",
    "a@-x.com",
    "a@x-.com",
    "a@x.123",
    "someone@printer.local",
    "someone@site.test",
    "a" * 65 + "@example.com",
    "a@" + "b" * 64 + ".com",
    " padded@example.com ",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_same_verdict_and_normal_form_as_email_validator(address: str) -> None:
    try:
        expected: str | None = validate_email(address.strip(), check_deliverability=False).normalized
    except EmailNotValidError:
        expected = None
    try:
        ours: str | None = normalize_email(address)
    except ValueError:
        ours = None
    assert ours == expected


@pytest.mark.parametrize(
    ("value", "region", "expected"),
    [
        ("+33 6 12-34-56-78", None, "+33612345678"),
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("(0)20 7946 0958", "GB", "+442079460958"),
        ("+1 (415) 555-0100", "FR", "+14155550100"),  # an international number ignores the region
    ],
)
def test_phone_numbers_become_e164(value: str, region: str | None, expected: str) -> None:
    assert normalize_phone(value, region) == expected


@pytest.mark.parametrize(
    ("value", "region", "reason"),
    [
        ("06 12 34 56 78", None, "international format"),
        ("+33 1", None, "too short"),
        ("+33 6 12 34 56 78 90 12", None, "too few or too many digits"),
        ("call me", "FR", "only digits"),
    ],
)
def test_impossible_phone_numbers_are_refused(value: str, region: str | None, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalize_phone(value, region)
