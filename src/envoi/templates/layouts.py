"""Shared layouts and snippets, and the design of a draft: its content with the current layout and snippets.

A published version keeps its own frozen copy, so editing a layout or a snippet changes only drafts (and the
next publications), never what is live.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.base import utcnow
from envoi.errors import Conflict, NotFound, ValidationFailed
from envoi.templates.design import Design
from envoi.templates.models import Layout, Snippet, Template
from envoi.templates.rendering import Liquid

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ValidationFailed(
            "use lower-case letters, digits, '_', '-' or '.', starting with a letter or digit", field="name"
        )
    return name


async def get_layout(session: AsyncSession, name: str) -> Layout:
    layout = await session.scalar(select(Layout).where(Layout.name == name))
    if layout is None:
        raise NotFound(f"layout '{name}' does not exist", field="layout")
    return layout


async def list_layouts(session: AsyncSession) -> list[Layout]:
    return list(await session.scalars(select(Layout).order_by(Layout.name)))


async def save_layout(
    session: AsyncSession, name: str, *, html: str | None, mjml: str | None, text: str | None
) -> Layout:
    """Create or replace a layout; each part must place the body with ``{{ content }}``."""
    check_name(name)
    if not (html or mjml or text):
        raise ValidationFailed("a layout needs at least one of html, mjml or text", field="html")
    liquid = Liquid()
    for key, source in (("html", html), ("mjml", mjml), ("text", text)):
        if source:
            liquid.compile(source, field=key, html=key != "text")
            if not re.search(r"{{-?\s*content\b", source):
                raise ValidationFailed(f"the {key} layout must place the body with {{{{ content }}}}", field=key)
    layout = await session.scalar(select(Layout).where(Layout.name == name))
    if layout is None:
        layout = Layout(name=name)
        session.add(layout)
    layout.html, layout.mjml, layout.text, layout.updated_at = html, mjml, text, utcnow()
    await session.flush()
    return layout


async def delete_layout(session: AsyncSession, name: str) -> None:
    layout = await get_layout(session, name)
    users = await _templates_using(session, "layout", name)
    if users:
        raise Conflict(f"layout '{name}' is used by template {', '.join(map(str, users))}", field="name")
    await session.delete(layout)


async def list_snippets(session: AsyncSession) -> list[Snippet]:
    return list(await session.scalars(select(Snippet).order_by(Snippet.name)))


async def get_snippet(session: AsyncSession, name: str) -> Snippet:
    snippet = await session.scalar(select(Snippet).where(Snippet.name == name))
    if snippet is None:
        raise NotFound(f"snippet '{name}' does not exist", field="name")
    return snippet


async def save_snippet(session: AsyncSession, name: str, source: str) -> Snippet:
    check_name(name)
    Liquid().compile(source, field="source", html=True)
    snippet = await session.scalar(select(Snippet).where(Snippet.name == name))
    if snippet is None:
        snippet = Snippet(name=name)
        session.add(snippet)
    snippet.source, snippet.updated_at = source, utcnow()
    await session.flush()
    return snippet


async def delete_snippet(session: AsyncSession, name: str) -> None:
    snippet = await get_snippet(session, name)
    await session.delete(snippet)  # drafts that render it will say so in preview and at publish


async def _templates_using(session: AsyncSession, key: str, name: str) -> list[int]:
    rows = await session.execute(select(Template.id, Template.content).where(Template.deleted_at.is_(None)))
    return [template_id for template_id, content in rows if content.get(key) == name]


async def draft_design(session: AsyncSession, template: Template) -> Design:
    """The draft as it would be published now: its layout as it is today, and every snippet by name."""
    content = template.content
    layout: dict[str, Any] | None = None
    if content.get("layout"):
        found = await get_layout(session, content["layout"])
        layout = {"name": found.name, "html": found.html, "mjml": found.mjml, "text": found.text}
    snippets = {name: source for name, source in await session.execute(select(Snippet.name, Snippet.source))}
    return Design.of_draft(content, layout=layout, snippets=snippets)
