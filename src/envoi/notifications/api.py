"""REST and SSE: the caller's own notifications.

Any authenticated operator reads and marks their own, whatever their groups; nobody reads another's. A
service account's key (one that belongs to no operator) has no inbox: its list is empty, marking one is a
404 as for any notification that is not the caller's, and its stream is a 404 (an idle stream would hold a
connection for nothing).
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials

from envoi.access.api import RuntimeDep, _bearer, principal_of
from envoi.access.permissions import Principal
from envoi.errors import EnvoiError, NotFound, StreamUnavailable, TooManyRequests, ValidationFailed
from envoi.notifications import service
from envoi.notifications.schemas import MarkedOut, NotificationOut, NotificationPageOut
from envoi.notifications.stream import notification_stream

MAX_STREAMS_PER_OPERATOR = 10  # tabs of one operator's consoles; more is a runaway script, or an attack
router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])
MAX_ID = 2**63 - 1
NotificationId = Annotated[int, Path(ge=1, le=MAX_ID)]


async def _signed_in(
    request: Request, _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """Any authenticated caller (console session with its CSRF token on changes, or API key): no permission is
    needed to read one's own notifications."""
    return await principal_of(request)


SignedIn = Annotated[Principal, Depends(_signed_in)]


@router.get("", response_model=NotificationPageOut)
async def list_notifications(
    runtime: RuntimeDep,
    who: SignedIn,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Only ids below this (the next page)")] = None,
    unread_only: Annotated[bool, Query(alias="unreadOnly")] = False,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> NotificationPageOut:
    """The caller's notifications, newest first, with their unread count."""
    async with runtime.transaction() as session:
        owner = await service.inbox_owner(session, who.operator_id)
        if owner is None:
            return NotificationPageOut(items=[], unread=0, next=None)
        rows = await service.list_notifications(session, owner, before_id=before, unread_only=unread_only, limit=limit)
        unread = await service.unread_count(session, owner)
    more = len(rows) == limit
    return NotificationPageOut(
        items=[NotificationOut.of(row) for row in rows], unread=unread, next=rows[-1].id if more else None
    )


@router.post("/read-all", response_model=MarkedOut)
async def mark_all_read(
    runtime: RuntimeDep,
    who: SignedIn,
    up_to: Annotated[
        int | None, Query(alias="upTo", ge=1, le=MAX_ID, description="Only up to this id: the newest one shown.")
    ] = None,
) -> MarkedOut:
    async with runtime.transaction() as session:
        owner = await service.inbox_owner(session, who.operator_id)
        if owner is None:
            return MarkedOut(marked=0, unread=0)
        marked = await service.mark_all_read(session, owner, up_to_id=up_to)
        unread = await service.unread_count(session, owner)
    return MarkedOut(marked=marked, unread=unread)


@router.post("/{notification_id}/read", response_model=NotificationOut, response_model_by_alias=True)
async def mark_read(notification_id: NotificationId, runtime: RuntimeDep, who: SignedIn) -> NotificationOut:
    async with runtime.transaction() as session:
        owner = await service.inbox_owner(session, who.operator_id)
        if owner is None:
            raise NotFound(f"notification {notification_id} does not exist")
        return NotificationOut.of(await service.mark_read(session, owner, notification_id))


@router.get(
    "/stream",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events, until the server stops."},
        404: {"description": "The caller is a service account, which has no notifications."},
    },
)
async def stream_notifications(
    request: Request,
    runtime: RuntimeDep,
    who: SignedIn,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", description="Sent by EventSource on reconnect: resume after it.")
    ] = None,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=MAX_ID,
            description="Without Last-Event-ID: send the notifications after this id (the "
            "newest one the page already shows). Without either, only notifications created from now on.",
        ),
    ] = None,
) -> StreamingResponse:
    """The caller's new notifications as they are created, in any process (``event: notification``, id = the
    notification's id), and their unread count when it changes (``event: unread``)."""
    hub = runtime.notifications
    if not hub.running:
        raise StreamUnavailable("live notifications are not running in this process")
    cursor = after
    if last_event_id is not None and last_event_id.strip():
        if not re.fullmatch(r"[0-9]{1,19}", last_event_id.strip()) or int(last_event_id) > MAX_ID:
            raise ValidationFailed("Last-Event-ID is the id of the last notification received", field="Last-Event-ID")
        cursor = int(last_event_id)
    async with runtime.transaction() as session:
        owner = await service.inbox_owner(session, who.operator_id)
        if owner is None:
            raise NotFound("a service account's key has no notifications to stream")
        if cursor is None:
            cursor = await service.newest_id(session, owner)
    if hub.streams_of(owner) >= MAX_STREAMS_PER_OPERATOR:
        raise TooManyRequests(f"at most {MAX_STREAMS_PER_OPERATOR} open notification streams per operator")

    async def still_allowed() -> bool:
        try:
            return (await principal_of(request)).operator_id == who.operator_id
        except EnvoiError:
            return False

    events = notification_stream(
        hub, runtime.sessionmaker, owner, cursor, runtime.settings.notification_heartbeat_seconds, still_allowed
    )
    # No-transform and no buffering: each event must leave proxies (nginx included) as soon as it is written.
    headers = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)
