"""The public tracking endpoints a marketing email links to: the open pixel, click redirects and the
unsubscribe page with its one-click POST (RFC 8058). No authentication: the signed token is the credential.
A mail client only ever sees a GIF, a redirect, a small page, or 404 for a token Envoi did not make."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from html import escape

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from envoi.access.api import RuntimeDep
from envoi.db.base import utcnow
from envoi.runtime import Runtime
from envoi.tracking.links import verify_target, verify_token
from envoi.tracking.models import TrackingHit
from envoi.tracking.secret import known_tracking_secret, tracking_secret
from envoi.tracking.service import UnsubscribeHow, email_of_event, record_click, record_open, unsubscribe

log = structlog.get_logger(__name__)
router = APIRouter(include_in_schema=False)  # links in emails, not part of the API

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")  # 1x1, transparent
_PRIVATE = {"Cache-Control": "no-store", "X-Robots-Tag": "noindex", "Referrer-Policy": "no-referrer"}


async def _secret(runtime: Runtime) -> bytes:
    known = known_tracking_secret(runtime.settings)
    if known is not None:
        return known
    async with runtime.transaction() as session:
        return await tracking_secret(session, runtime.settings)


async def _event_of(runtime: Runtime, token: str) -> int | None:
    event_id = verify_token(token, await _secret(runtime))
    if event_id is None:
        log.info("tracking.bad_token")
    return event_id


async def _record(
    runtime: Runtime, name: str, event_id: int, action: Callable[[AsyncSession], Awaitable[TrackingHit | None]]
) -> TrackingHit | None:
    """Records a hit in its own transaction. A failure is logged, never shown: the reader's click must land."""
    try:
        async with runtime.transaction() as session:
            hit = await action(session)
    except SQLAlchemyError:
        log.exception("tracking.record_failed", kind=name, event_id=event_id)
        return None
    if hit is None:
        log.info("tracking.unknown_event", kind=name, event_id=event_id)
    else:
        log.info(f"tracking.{name}", event_id=event_id, message_id=hit.message_id, bot=hit.bot)
    return hit


def _page(title: str, text: str, *, status: int = 200, form: bool = False) -> HTMLResponse:
    button = '<form method="post"><button type="submit">Unsubscribe</button></form>' if form else ""
    body = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>body{{font-family:system-ui,sans-serif;max-width:32rem;"
        "margin:4rem auto;padding:0 1rem;color:#222}button{font-size:1rem;padding:.5rem 1.25rem}</style>"
        f"</head><body><h1>{escape(title)}</h1><p>{escape(text)}</p>{button}</body></html>"
    )
    return HTMLResponse(body, status_code=status, headers=_PRIVATE)


def _not_found() -> HTMLResponse:
    return _page("Link not valid", "This link is not valid, or is no longer valid.", status=404)


def masked(address: str) -> str:
    """``a***@example.com``: enough for its owner to recognize, not enough to harvest from a forwarded link."""
    local, at, domain = address.partition("@")
    return f"{local[:1]}***@{domain}" if at and local else "***"


@router.get("/t/o/{token}.gif")
async def open_pixel(token: str, request: Request, runtime: RuntimeDep) -> Response:
    """Always the GIF, whatever the token: an image in an email never shows as broken."""
    try:
        event_id = await _event_of(runtime, token)
    except SQLAlchemyError:
        log.exception("tracking.record_failed", kind="open")
        event_id = None
    if event_id is not None:
        agent, now, window = request.headers.get("user-agent"), utcnow(), runtime.settings.tracking_bot_window_seconds
        await _record(
            runtime,
            "open",
            event_id,
            lambda session: record_open(session, event_id, user_agent=agent, now=now, bot_window=window),
        )
    return Response(PIXEL, media_type="image/gif", headers=_PRIVATE)


@router.get("/t/c/{token}")
async def click(token: str, request: Request, runtime: RuntimeDep) -> Response:
    """Redirects only to a target Envoi signed for this token: never an open redirect."""
    event_id = await _event_of(runtime, token)
    if event_id is None:
        return _not_found()
    target, signature = request.query_params.get("u", ""), request.query_params.get("s", "")
    secret = await _secret(runtime)
    if not target.lower().startswith(("http://", "https://")) or not verify_target(token, target, signature, secret):
        log.info("tracking.bad_click_signature", event_id=event_id)
        return _page("Broken link", "This link is broken: it was changed after the email was sent.", status=400)
    agent, now, window = request.headers.get("user-agent"), utcnow(), runtime.settings.tracking_bot_window_seconds
    await _record(
        runtime,
        "click",
        event_id,
        lambda session: record_click(session, event_id, target, user_agent=agent, now=now, bot_window=window),
    )
    return RedirectResponse(target, status_code=302, headers={"Cache-Control": "no-store"})


@router.get("/u/{token}")
async def unsubscribe_page(token: str, runtime: RuntimeDep) -> HTMLResponse:
    """Asks first: scanners GET every link of an email, so a GET never unsubscribes."""
    event_id = await _event_of(runtime, token)
    if event_id is None:
        return _not_found()
    async with runtime.transaction() as session:
        message = await email_of_event(session, event_id)
    if message is None:
        log.info("tracking.unknown_event", kind="unsubscribe_page", event_id=event_id)
        return _not_found()
    question = f"Unsubscribe {masked(message.address)} from these emails?"
    return _page("Unsubscribe", question, form=True)


@router.post("/u/{token}")
async def unsubscribe_now(token: str, request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """The page's form and RFC 8058's one-click POST (no cookie, no CSRF token: the token is the credential)."""
    event_id = await _event_of(runtime, token)
    if event_id is None:
        return _not_found()
    how = UnsubscribeHow.ONE_CLICK if await _is_one_click(request) else UnsubscribeHow.LINK
    agent, now = request.headers.get("user-agent"), utcnow()
    async with runtime.transaction() as session:  # an error here is a 500: saying "unsubscribed" would be a lie
        hit = await unsubscribe(session, event_id, how=how, user_agent=agent, now=now)
    if hit is None:
        log.info("tracking.unknown_event", kind="unsubscribe", event_id=event_id)
        return _not_found()
    log.info("tracking.unsubscribe", event_id=event_id, message_id=hit.message_id, how=how.value)
    return _page("You are unsubscribed", "You will receive no more of these emails.")


async def _is_one_click(request: Request) -> bool:
    """RFC 8058's body, form-urlencoded (Gmail) or multipart (the RFC's own example)."""
    try:
        form = await request.form()
    except (HTTPException, MultiPartException):  # no form, still a request to leave: only "how" differs
        return False
    return form.get("List-Unsubscribe") == "One-Click"
