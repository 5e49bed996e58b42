"""Every console page in one router, and where its static files are, for the application to mount."""

from __future__ import annotations

from fastapi import APIRouter

from envoi.console import (
    audiences,
    audit_log,
    auth,
    deliveries,
    delivery_templates,
    dkim,
    editor,
    event_types,
    events,
    groups,
    home,
    keys,
    operators,
    outbox,
    profiles,
    publishing,
    quarantine,
    reports,
    webhooks,
    workflow_templates,
    workflows,
)
from envoi.console.rendering import STATIC_DIR

__all__ = ["STATIC_DIR", "router"]

PAGES = (
    auth, home, event_types, editor, publishing, events, quarantine, outbox, workflows, workflow_templates, operators,
    groups, keys, audit_log, deliveries, delivery_templates, profiles, audiences, webhooks, dkim,
    reports,
)  # fmt: skip
router = APIRouter()
for pages in PAGES:
    router.include_router(pages.router)
