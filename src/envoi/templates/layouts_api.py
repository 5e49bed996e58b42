"""REST: shared layouts (`{{ content }}` marks where a template's body goes) and snippets (`{% render 'name' %}`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from envoi.access.api import CanEditTemplates, CanView, RuntimeDep
from envoi.access.audit import audit
from envoi.templates import layouts
from envoi.templates.models import Layout, Snippet

router = APIRouter(prefix="/api/v1", tags=["layouts and snippets"])
Name = Annotated[str, Path(min_length=1, max_length=100)]


class LayoutIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    html: str | None = Field(None, max_length=1_000_000, examples=["<div class='brand'>{{ content }}</div>"])
    mjml: str | None = Field(None, max_length=1_000_000)
    text: str | None = Field(None, max_length=1_000_000, examples=["{{ content }}\n--\nShop Inc."])


class LayoutOut(LayoutIn):
    name: str


class SnippetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1, max_length=1_000_000, examples=["<p>Shop Inc., 1 Main St.</p>"])


class SnippetOut(SnippetIn):
    name: str


def _layout_out(layout: Layout) -> LayoutOut:
    return LayoutOut(name=layout.name, html=layout.html, mjml=layout.mjml, text=layout.text)


def _snippet_out(snippet: Snippet) -> SnippetOut:
    return SnippetOut(name=snippet.name, source=snippet.source)


@router.get("/layouts", response_model=list[LayoutOut])
async def list_layouts(runtime: RuntimeDep, _who: CanView) -> list[LayoutOut]:
    async with runtime.transaction() as session:
        return [_layout_out(layout) for layout in await layouts.list_layouts(session)]


@router.get("/layouts/{name}", response_model=LayoutOut)
async def get_layout(name: Name, runtime: RuntimeDep, _who: CanView) -> LayoutOut:
    async with runtime.transaction() as session:
        return _layout_out(await layouts.get_layout(session, name))


@router.put("/layouts/{name}", response_model=LayoutOut)
async def save_layout(name: Name, data: LayoutIn, runtime: RuntimeDep, who: CanEditTemplates) -> LayoutOut:
    """Create or replace. Drafts use the new layout at once; published versions keep the one they froze."""
    async with runtime.transaction() as session:
        saved = await layouts.save_layout(session, name, html=data.html, mjml=data.mjml, text=data.text)
        audit(session, who, "saved", "layout", name)
        return _layout_out(saved)


@router.delete("/layouts/{name}", status_code=204)
async def delete_layout(name: Name, runtime: RuntimeDep, who: CanEditTemplates) -> None:
    """Refused (409) while a template uses it."""
    async with runtime.transaction() as session:
        await layouts.delete_layout(session, name)
        audit(session, who, "deleted", "layout", name)


@router.get("/snippets", response_model=list[SnippetOut])
async def list_snippets(runtime: RuntimeDep, _who: CanView) -> list[SnippetOut]:
    async with runtime.transaction() as session:
        return [_snippet_out(snippet) for snippet in await layouts.list_snippets(session)]


@router.get("/snippets/{name}", response_model=SnippetOut)
async def get_snippet(name: Name, runtime: RuntimeDep, _who: CanView) -> SnippetOut:
    async with runtime.transaction() as session:
        return _snippet_out(await layouts.get_snippet(session, name))


@router.put("/snippets/{name}", response_model=SnippetOut)
async def save_snippet(name: Name, data: SnippetIn, runtime: RuntimeDep, who: CanEditTemplates) -> SnippetOut:
    """Create or replace. Drafts use the new text at once; published versions keep the one they froze."""
    async with runtime.transaction() as session:
        saved = await layouts.save_snippet(session, name, data.source)
        audit(session, who, "saved", "snippet", name)
        return _snippet_out(saved)


@router.delete("/snippets/{name}", status_code=204)
async def delete_snippet(name: Name, runtime: RuntimeDep, who: CanEditTemplates) -> None:
    async with runtime.transaction() as session:
        await layouts.delete_snippet(session, name)
        audit(session, who, "deleted", "snippet", name)
