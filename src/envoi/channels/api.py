"""REST: read the built-in outbox, where messages go when no provider is configured for their channel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from envoi.access.api import CanView, RuntimeDep
from envoi.channels.outbox import OutboxMessage
from envoi.channels.sms import encode_sms
from envoi.errors import NotFound

router = APIRouter(prefix="/api/v1/outbox", tags=["outbox"])


class OutboxAttachmentOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    filename: str
    content_type: str = Field(alias="contentType")
    size: int = Field(description="In bytes.")


class OutboxPushOut(BaseModel):
    platform: str = Field(description="ios, android or web.")
    data: dict[str, str] = Field(description="Delivered to the app, not shown.")
    badge: int | None
    sound: str | None


class OutboxOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    channel: str
    sender: str = Field(alias="from")
    to: str
    reply_to: str | None = Field(alias="replyTo")
    subject: str | None
    html: str | None
    text: str | None
    message_id: str | None = Field(alias="messageId")
    encoding: str | None = Field(None, description="SMS: GSM-7 or UCS-2.")
    segments: int | None = Field(None, description="SMS: the parts it went out in.")
    attachments: list[OutboxAttachmentOut] = Field(description="The files sent with the message, without content.")
    push: OutboxPushOut | None = Field(
        None, description="Push: platform, data, badge and sound (the title is the subject, the body the text)."
    )
    created_at: datetime = Field(alias="createdAt")


def _out(row: OutboxMessage) -> OutboxOut:
    sms = encode_sms(row.text or "") if row.channel == "sms" else None
    return OutboxOut(
        encoding=sms.encoding if sms else None,
        segments=sms.segments if sms else None,
        id=row.id,
        channel=row.channel,
        sender=row.sender,
        to=row.recipient,
        reply_to=row.reply_to,
        subject=row.subject,
        html=row.html,
        text=row.text,
        message_id=row.message_id,
        attachments=[OutboxAttachmentOut.model_validate(item) for item in row.attachments or ()],
        push=OutboxPushOut.model_validate(row.push) if row.push else None,
        created_at=row.created_at,
    )


@router.get("", response_model=list[OutboxOut])
async def list_outbox(
    runtime: RuntimeDep,
    _who: CanView,
    to: str | None = None,
    before: int | None = Query(None, ge=1, le=2**63 - 1, description="Only ids below this (the next page)"),
    limit: int = Query(50, ge=1, le=500),
) -> list[OutboxOut]:
    """Captured messages, newest first."""
    query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
    if to:
        query = query.where(OutboxMessage.recipient == to)
    if before:
        query = query.where(OutboxMessage.id < before)
    async with runtime.transaction() as session:
        return [_out(row) for row in await session.scalars(query)]


@router.get("/{message_id}", response_model=OutboxOut)
async def read_outbox_message(
    message_id: Annotated[int, Path(ge=1, le=2**63 - 1)], runtime: RuntimeDep, _who: CanView
) -> OutboxOut:
    async with runtime.transaction() as session:
        row = await session.get(OutboxMessage, message_id)
    if row is None:
        raise NotFound(f"outbox message {message_id} does not exist")
    return _out(row)
