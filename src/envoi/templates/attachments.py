"""Attachments by URL: read them from an event's ctx (Adobe Campaign's ``attachmentURL``), then fetch them.

``attachmentURL`` is a URL, an object ``{"url", "name"}``, or a list of either. Events that came in over SOAP
have their ctx mapped from XML (see ``envoi.soap.xml``): an attribute becomes an ``"@url"``/``"@name"`` key,
and an element's text beside attributes goes under ``"#text"``, so ``<attachmentURL name="a.pdf">https://…``
reads back as ``{"@name": "a.pdf", "#text": "https://…"}``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import structlog

from envoi.channels.base import Attachment, EmailMessage, Failed, Retry
from envoi.outbound import OutboundClient, OutboundRefused, OutboundUnavailable

log = structlog.get_logger(__name__)

ATTACHMENT_KEY = "attachmentURL"
CONCURRENT_FETCHES = 4
_URL_KEYS = ("url", "@url", "#text")
_NAME_KEYS = ("name", "@name")


def attachment_urls(ctx: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """The (url, filename or None) pairs the ctx asks for, in order; ValueError says what is malformed."""
    value = ctx.get(ATTACHMENT_KEY)
    if value is None:
        return []
    if isinstance(value, list):
        found = [_entry(item, f"{ATTACHMENT_KEY}[{index}]") for index, item in enumerate(value)]
    else:
        found = [_entry(value, ATTACHMENT_KEY)]
    return [entry for entry in found if entry is not None]


def _entry(item: object, where: str) -> tuple[str, str | None] | None:
    if isinstance(item, str):
        if not item.strip():
            return None  # an empty element or an empty template variable: no attachment
        return _checked_url(item, where), None
    if not isinstance(item, dict):
        raise ValueError(f'{where} must be a URL or an object with "url" and "name", not {_kind(item)}')
    url = _text(item, _URL_KEYS, where)
    if url is None or not url.strip():
        raise ValueError(f'{where} has no URL: expected "url" (or "@url" from an XML attribute)')
    name = (_text(item, _NAME_KEYS, where) or "").strip()
    return _checked_url(url, where), name or None


def _text(item: Mapping[str, Any], keys: Sequence[str], where: str) -> str | None:
    for key in keys:
        if key in item:
            value = item[key]
            if not isinstance(value, str):
                raise ValueError(f"{where}.{key} must be a string, not {_kind(value)}")
            return value
    return None


def _checked_url(url: str, where: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.netloc or any(c.isspace() for c in url):
        shown = url if len(url) <= 100 else url[:100] + "…"
        raise ValueError(f"{where} is not an https:// URL: {shown!r}")
    return url


def _kind(value: object) -> str:
    return {list: "a list", dict: "an object", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


async def fetch_attachments(fetcher: OutboundClient, urls: Sequence[tuple[str, str | None]]) -> tuple[Attachment, ...]:
    """Fetch every URL, a few at a time; the filename given with a URL wins over the server's.

    Raises OutboundRefused if any is refused or if together they pass ``fetcher.max_bytes`` (the message could
    never be sent), else OutboundUnavailable if any could not be fetched now. The first failure stops the rest.
    """
    if not urls:
        return ()
    slots = asyncio.Semaphore(CONCURRENT_FETCHES)
    total = 0

    async def fetch_one(url: str, name: str | None) -> Attachment:
        nonlocal total
        async with slots:
            fetched = await fetcher.fetch(url)
        total += len(fetched.data)
        if total > fetcher.max_bytes:
            raise OutboundRefused(f"the attachments total more than {fetcher.max_bytes} bytes")
        return Attachment(name or fetched.filename, fetched.content_type, fetched.data)

    tasks = [asyncio.create_task(fetch_one(url, name)) for url, name in urls]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()  # no-op for the finished ones
        await asyncio.gather(*tasks, return_exceptions=True)
    errors = [error for task in tasks if not task.cancelled() and (error := task.exception()) is not None]
    if errors:
        raise next((error for error in errors if isinstance(error, OutboundRefused)), errors[0])
    return tuple(task.result() for task in tasks)


async def attach_files(
    fetcher: OutboundClient, message: EmailMessage, urls: Sequence[tuple[str, str | None]]
) -> EmailMessage | Failed | Retry:
    """The message with its attachments, or why it cannot go: refused for good, or to be tried again later."""
    try:
        files = await fetch_attachments(fetcher, urls)
    except OutboundRefused as error:
        return Failed(f"attachment refused: {error.reason}")
    except OutboundUnavailable as error:
        return Retry(f"attachment unavailable: {error.reason}", error.retry_after)
    except Exception as error:  # an answer nobody foresaw must cost one message a retry, never the whole batch
        log.exception("attachments.fetch_failed", ref=message.ref)
        return Retry(f"attachment: {type(error).__name__}")
    return dataclasses.replace(message, attachments=files)
