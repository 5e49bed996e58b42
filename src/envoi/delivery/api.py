"""REST: the quarantine list, and taking an address out of it."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from envoi.access.api import CanManageDeliveries, CanView, RuntimeDep
from envoi.access.audit import audit
from envoi.delivery.quarantine import list_quarantine, release_from_quarantine

router = APIRouter(prefix="/api/v1/quarantine", tags=["quarantine"])


class QuarantineOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    channel: str
    address: str
    reason: str
    created_at: datetime = Field(alias="createdAt")


@router.get("", response_model=list[QuarantineOut])
async def read_quarantine(runtime: RuntimeDep, _who: CanView, channel: str | None = None) -> list[QuarantineOut]:
    async with runtime.transaction() as session:
        rows = await list_quarantine(session, channel)
    return [QuarantineOut(channel=r.channel, address=r.address, reason=r.reason, created_at=r.created_at) for r in rows]


@router.delete("/{channel}/{address:path}", status_code=204)
async def release_address(channel: str, address: str, runtime: RuntimeDep, who: CanManageDeliveries) -> Response:
    """Send to this address again (after the recipient fixed their mailbox, say). The address is the rest of
    the path, percent-encoded: a Web Push subscription holds slashes."""
    async with runtime.transaction() as session:
        await release_from_quarantine(session, channel, address)
        audit(session, who, "released", "quarantine", f"{channel}:{address}"[:200])
    return Response(status_code=204)
