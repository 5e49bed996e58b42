"""The quarantine: addresses not sent to, and why; delivery supervisors release them."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from envoi.access.audit import audit
from envoi.console.forms import read_form
from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of, see_other
from envoi.console.session import CanManageDeliveries, CanView
from envoi.delivery.quarantine import list_quarantine, release_from_quarantine

router = console_router()
CHANNELS = ("email", "sms", "push")


@router.get("/quarantine")
async def quarantine(request: Request, _viewer: CanView, channel: str = "", released: str = "") -> HTMLResponse:
    async with runtime_of(request).transaction() as session:
        rows = await list_quarantine(session, channel if channel in CHANNELS else None)
    flash = f"{released} was released: it will be sent to again." if released else None
    context = {"rows": rows, "channel": channel, "channels": CHANNELS, "flash": flash}
    return render(request, "quarantine.html", context)


@router.post("/quarantine/release")
async def release(request: Request, viewer: CanManageDeliveries) -> Response:
    form = await read_form(request)
    channel, address = form.text("channel"), form.raw("address")
    async with runtime_of(request).transaction() as session:
        await release_from_quarantine(session, channel, address)
        audit(session, viewer.principal, "released", "quarantine", f"{channel}:{address}"[:200])
    return see_other("/console/quarantine?" + urlencode({"released": address[:200]}))
