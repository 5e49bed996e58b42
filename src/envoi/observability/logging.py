"""Structured logs: one event name per line, with ids; never secrets or message bodies.

Envoi logs no secret by design (tests/security/test_secrets.py checks it); the redaction below is the net under
that: a URL's password (``smtp://user:password@host``) and values logged under a secret's name are masked in
every line, ours and the libraries', should one ever be logged by mistake."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

MASK = "**********"
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/?#@]*:)[^\s/?#@]+@")
_SECRET_NAMES = frozenset({"password", "passwd", "secret", "api_key", "authorization", "private_key", "session_token"})


def mask_url_passwords(text: str) -> str:
    return _URL_PASSWORD.sub(rf"\1{MASK}@", text) if "://" in text else text


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: values named like a secret are masked, and so are URLs' passwords in any text
    (tracebacks included: it runs after format_exc_info)."""
    for key, value in event_dict.items():
        if key.lower() in _SECRET_NAMES and value is not None:
            event_dict[key] = MASK
        elif isinstance(value, str):
            event_dict[key] = mask_url_passwords(value)
    return event_dict


class _RedactingFilter(logging.Filter):
    """The same for the standard library's records (uvicorn's, SQLAlchemy's, httpx's...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_url_passwords(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def configure_logging(level: str = "info", *, json: bool = False) -> None:
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(
        level=max(numeric, logging.WARNING), stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, _RedactingFilter) for existing in handler.filters):
            handler.addFilter(_RedactingFilter())
