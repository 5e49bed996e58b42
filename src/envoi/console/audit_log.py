"""The audit log, for administrators: who created, changed, released, revoked or deleted what, and when."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse

from envoi.access.audit import audit_trail
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of
from envoi.console.session import CanManageOperators

router = console_router()
PAGE_SIZE = 100
OBJECT_TYPES = ("operator", "group", "api_key", "event_type", "layout", "snippet", "provider", "quarantine")


@router.get("/audit")
async def audit_log(
    request: Request, _viewer: CanManageOperators, objectType: str = "", before: int | None = None
) -> HTMLResponse:
    object_type = objectType.strip()[:64] or None
    before_id = before if before is not None and 0 < before < 2**63 else None
    async with runtime_of(request).transaction() as session:
        entries = await audit_trail(session, object_type=object_type, before_id=before_id, limit=PAGE_SIZE)
    following = None
    if len(entries) == PAGE_SIZE:
        following = urlencode({"objectType": object_type or "", "before": entries[-1].id})
    context = {"entries": entries, "object_type": object_type or "", "object_types": OBJECT_TYPES,
               "next_page": following}  # fmt: skip
    return render(request, "audit.html", context)
