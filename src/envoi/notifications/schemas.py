"""The notifications API's shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from envoi.notifications.models import Notification


class NotificationOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int = Field(description="Also the id of its event on the stream (resume with Last-Event-ID).")
    category: str = Field(description="action_required or info.")
    title: str
    body: str
    link: str | None = Field(description="Its object's console page (a path), or an address.")
    object_type: str | None = Field(alias="objectType", description="template, event, event_type…")
    object_id: str | None = Field(alias="objectId")
    created_at: datetime = Field(alias="createdAt")
    read_at: datetime | None = Field(alias="readAt")
    read: bool

    @classmethod
    def of(cls, row: Notification) -> NotificationOut:
        return cls(
            id=row.id,
            category=row.category,
            title=row.title,
            body=row.body,
            link=row.link,
            object_type=row.object_type,
            object_id=row.object_id,
            created_at=row.created_at,
            read_at=row.read_at,
            read=row.read_at is not None,
        )


class NotificationPageOut(BaseModel):
    items: list[NotificationOut] = Field(description="Newest first.")
    unread: int = Field(description="The caller's unread notifications, on every page.")
    next: int | None = Field(description="Pass it as `before` for the next page; null on the last one.")


class MarkedOut(BaseModel):
    marked: int = Field(description="How many notifications were unread and now are read.")
    unread: int
