"""The fast path for everyday addresses agrees with the full validator."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email

from envoi.addresses import normalize_email

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
