"""Address checks shared by ingestion and templates."""

from __future__ import annotations

from email.utils import parseaddr

from email_validator import EmailNotValidError, validate_email


def normalize_email(value: str) -> str:
    """The address as we store and quarantine it; raises ValueError with a reason a user can act on."""
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(str(error)) from error
    return result.normalized


def check_mailbox(value: str) -> str:
    """A From or Reply-To header: an address, optionally with a display name (``Shop <shop@example.com>``)."""
    _name, address = parseaddr(value)
    if not address:
        raise ValueError("expected an address such as shop@example.com or 'Shop <shop@example.com>'")
    normalize_email(address)
    return value.strip()
