"""REST: the reports the bounce listener received (``/api/v1/bounces``), newest first."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from envoi.access.api import CanView, RuntimeDep
from envoi.bounces.models import BounceKind
from envoi.bounces.schemas import BounceOut
from envoi.bounces.service import list_bounces
from envoi.errors import ValidationFailed
from envoi.events.validation import text_problem

router = APIRouter(prefix="/api/v1/bounces", tags=["bounces"])
MAX_ID = 2**63 - 1


@router.get("", response_model=list[BounceOut])
async def read_bounces(
    runtime: RuntimeDep,
    _who: CanView,
    address: Annotated[str | None, Query(max_length=2000, description="The address a report is about.")] = None,
    kind: Annotated[Literal["hard", "soft", "complaint", "ignored"] | None, Query()] = None,
    event_id: Annotated[int | None, Query(alias="eventId", ge=1, le=MAX_ID)] = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only ids below this (the next page)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[BounceOut]:
    """Hard and soft bounces, complaints, and the reports ignored (delay notices, auto-replies, reports about
    no message of ours), each with what the remote server said."""
    if address and (problem := text_problem(address, "address")):
        raise ValidationFailed(problem[1], field=problem[0])
    async with runtime.transaction() as session:
        found = await list_bounces(
            session,
            address=address,
            kind=BounceKind[kind.upper()] if kind else None,
            event_id=event_id,
            before_id=before,
            limit=limit,
        )
    return [BounceOut.of(bounce) for bounce in found]
