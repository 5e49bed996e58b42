"""Address checks shared by ingestion and templates: email addresses, phone numbers, push tokens."""

from __future__ import annotations

import json
import re
from email.utils import parseaddr
from urllib.parse import urlsplit

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

# The everyday address (ASCII dot-atom, a dotted domain with a letter TLD): checked by one regex instead of
# the full validator, which costs 40 µs and dominated batch ingestion. Anything else takes the full path.
_PLAIN = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
)


_PHONE_CHARACTERS = re.compile(r"\+?[0-9 ().\-/]+")


def plain_phone(value: str) -> str:
    """Digits with an optional leading +, for a number no SMS goes to: checked, not interpreted."""
    text = value.strip()
    if not _PHONE_CHARACTERS.fullmatch(text):
        raise ValueError("only digits, spaces, dots, dashes, parentheses and a leading + are allowed")
    digits = re.sub(r"\D", "", text)
    if not 6 <= len(digits) <= 15:  # E.164 numbers have at most 15 digits
        raise ValueError("a phone number has between 6 and 15 digits")
    return ("+" if text.startswith("+") else "") + digits


def normalize_phone(value: str, region: str | None = None) -> str:
    """The number in E.164 (``+33612345678``); a national number (``06 12 34 56 78``) needs the default
    ``region`` (``FR``). Raises ValueError with a reason a user can act on."""
    text = value.strip()
    if not _PHONE_CHARACTERS.fullmatch(text):
        raise ValueError("only digits, spaces, dots, dashes, parentheses and a leading + are allowed")
    if not text.startswith("+") and region is None:
        raise ValueError("give it in international format (+33 6 12 34 56 78), or set ENVOI_DEFAULT_REGION")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as error:
        raise ValueError(str(error).split(") ", 1)[-1]) from None
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise ValueError("it has too few or too many digits for its country")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _special_use(domain: str) -> bool:
    """Domains the full validator refuses (``.test``, ``.local``…): let it explain why."""
    return any(domain == name or domain.endswith("." + name) for name in SPECIAL_USE_DOMAIN_NAMES)


def normalize_email(value: str) -> str:
    """The address as we store and quarantine it; raises ValueError with a reason a user can act on."""
    plain = _PLAIN.fullmatch(value.strip())
    if (
        plain is not None
        and len(plain["local"]) <= 64
        and len(value.strip()) <= 254
        and not _special_use(plain["domain"].lower())
    ):
        return f"{plain['local']}@{plain['domain'].lower()}"
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


_APNS_TOKEN = re.compile(r"[0-9a-fA-F]{64,200}")
_PUSH_TOKEN_WORDS = {"ios": "APNs device token", "android": "FCM registration token", "web": "Web Push subscription"}


def push_token_word(platform: str) -> str:
    """What a registration token is called on ``platform``, for messages."""
    return _PUSH_TOKEN_WORDS.get(platform, "registration token")


def push_platform(token: str | None, platform: str | None) -> str | None:
    """The platform given, or web for a token that is a JSON object: only a Web Push subscription is one."""
    if platform is None and token and token.lstrip().startswith("{"):
        return "web"
    return platform


def normalize_push_token(token: str, platform: str) -> str:
    """The token as we store and quarantine it, checked loosely for its platform (the provider has the last word):
    an APNs device token is hex (lower-cased), an FCM token one word, a Web Push subscription the browser's JSON
    with an https ``endpoint`` and ``keys.p256dh`` / ``keys.auth`` (made compact, so one browser is one address).
    Raises ValueError with a reason a user can act on."""
    text = token.strip()
    if platform == "ios":
        if not _APNS_TOKEN.fullmatch(text):
            raise ValueError("an APNs device token is 64 to 200 hexadecimal digits")
        return text.lower()
    if platform == "android":
        if not text or any(character.isspace() for character in text):
            raise ValueError("an FCM registration token is one word, without spaces")
        return text
    return _web_subscription(text)


def _web_subscription(text: str) -> str:
    try:
        subscription = json.loads(text)
    except (ValueError, RecursionError):
        subscription = None
    if not isinstance(subscription, dict):
        raise ValueError('expected the browser\'s subscription as JSON: {"endpoint": "https://...", "keys": {...}}')
    endpoint, keys = subscription.get("endpoint"), subscription.get("keys")
    try:
        url = urlsplit(endpoint) if isinstance(endpoint, str) else None
        secure = url is not None and url.scheme == "https" and bool(url.hostname)
    except ValueError:  # an unbalanced [ in the host, say
        secure = False
    if not secure:
        raise ValueError("its endpoint must be an https URL")
    if not isinstance(keys, dict) or not all(isinstance(keys.get(k), str) and keys[k] for k in ("p256dh", "auth")):
        raise ValueError("it needs keys.p256dh and keys.auth")
    return json.dumps(subscription, separators=(",", ":"), ensure_ascii=False)


def address_for(
    channel: str, *, email: str | None, mobile_phone: str | None, registration_token: str | None
) -> str | None:
    """Where a message on ``channel`` goes, of an event's addresses. A registration token is an address only
    with its platform: callers pass None for a token whose platform is unknown."""
    return {"email": email, "sms": mobile_phone, "push": registration_token}.get(channel)
