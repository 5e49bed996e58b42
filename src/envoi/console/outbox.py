"""The outbox: messages captured instead of sent. An email is shown as its recipient would see it, in a
sandboxed frame of its own (never in the console's page); an SMS or a push notification as text."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from envoi.channels.outbox import OutboxMessage
from envoi.channels.sms import encode_sms
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of
from envoi.console.session import CanView
from envoi.errors import NotFound

router = console_router()
PAGE_SIZE = 50
MessageId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/outbox")
async def outbox(
    request: Request, _viewer: CanView, to: str = "", channel: str = "", before: int | None = None
) -> HTMLResponse:
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(PAGE_SIZE)
    if to.strip():
        query = query.where(OutboxMessage.recipient == to.strip())
    if channel in ("email", "sms", "push"):
        query = query.where(OutboxMessage.channel == channel)
    if before is not None and 0 < before < 2**63:
        query = query.where(OutboxMessage.id < before)
    async with runtime_of(request).transaction() as session:
        rows = list((await session.scalars(query)).all())
    following = {"to": to, "channel": channel, "before": str(rows[-1].id)} if len(rows) == PAGE_SIZE else None
    context = {"rows": rows, "to": to, "channel": channel, "next_page": following}
    return render(request, "outbox.html", context)


@router.get("/outbox/{message_id}")
async def outbox_message(request: Request, message_id: MessageId, _viewer: CanView) -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        row = await session.get(OutboxMessage, message_id)
    if row is None:
        raise NotFound(f"outbox message {message_id} does not exist")
    sms = encode_sms(row.text or "") if row.channel == "sms" else None
    return render(request, "outbox_message.html", {"message": row, "sms": sms})
