"""DKIM in the console: the keys that sign outgoing email, and the DNS record to publish for each (derived from
the private key's public key). Keys are files, made with ``envoi dkim generate``: nothing to change here."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from envoi.console.rendering import render
from envoi.console.routing import console_router, runtime_of
from envoi.console.session import CanManageDeliveries
from envoi.providers.dkim import dkim_keys

router = console_router()


@router.get("/dkim")
async def dkim(request: Request, _viewer: CanManageDeliveries) -> HTMLResponse:
    runtime = runtime_of(request)
    async with runtime.transaction() as session:
        found = await dkim_keys(session, runtime.settings, runtime.providers.static)
    return render(request, "dkim.html", {"found": found, "key_dir": runtime.settings.dkim_key_dir})
