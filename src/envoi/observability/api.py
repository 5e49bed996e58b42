"""``GET /metrics`` for Prometheus: an API key with the view_events permission, sent as a bearer token."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from envoi.access.api import CanView, RuntimeDep
from envoi.observability.metrics import CONTENT_TYPE, exposition, queue_depth

router = APIRouter(tags=["observability"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus' text format"}},
)
async def metrics(runtime: RuntimeDep, _who: CanView) -> Response:
    """Events in, messages out by channel and outcome, latency histograms and webhook calls, summed over every
    Envoi process of this host; the queue's depth by status, read from the database."""
    async with runtime.transaction() as session:
        depth = await queue_depth(session)
    # Reading every process's files takes a moment: not on the event loop, where deliveries run.
    return Response(await asyncio.to_thread(exposition, depth), media_type=CONTENT_TYPE)
