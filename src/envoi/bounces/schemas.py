"""The REST shape of a bounce."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from envoi.bounces.models import Bounce, BounceKind


class BounceOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    received_at: datetime = Field(alias="receivedAt")
    kind: str = Field(description="hard, soft, complaint or ignored.")
    message_id: int | None = Field(alias="messageId", description="The message it is about; null: none of ours.")
    event_id: int | None = Field(alias="eventId")
    address: str | None
    status_code: str | None = Field(alias="statusCode", description="The enhanced status code, like 5.1.1.")
    diagnostic: str | None = Field(description="What the remote server said, or why the report was ignored.")
    reporter: str | None = Field(description="The server or feedback loop that sent the report.")

    @classmethod
    def of(cls, bounce: Bounce) -> BounceOut:
        return cls(
            id=bounce.id,
            received_at=bounce.received_at,
            kind=BounceKind(bounce.kind).label,
            message_id=bounce.message_id,
            event_id=bounce.event_id,
            address=bounce.address,
            status_code=bounce.status_code,
            diagnostic=bounce.diagnostic,
            reporter=bounce.reporter,
        )
