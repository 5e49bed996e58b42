"""An email template: sender, reply-to, subject, an HTML or MJML body in a layout, and a text part.

Rendering one email, in order: the body's Liquid; the layout's Liquid around it (``{{ content }}``); MJML to
HTML; CSS from ``<style>`` inlined; the text part rendered, or written from the final HTML when there is none.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import css_inline
import mjml
from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig
from markupsafe import Markup

from envoi.templates.design import Design, Part, compile_part
from envoi.templates.rendering import Liquid, RenderError

_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True, keep_link_tags=True)
_TEXT_CONFIG = ParserConfig(display_links=True, css=CSS_PROFILES["strict"])  # "relaxed" indents every <div>


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    language: str
    sender: str
    reply_to: str | None
    subject: str
    html: str | None
    text: str | None


@dataclass(slots=True)
class CompiledEmail:
    design: Design
    language: str
    sender: Part | None
    reply_to: Part | None
    subject: Part | None
    body: Part | None
    mjml: bool
    text: Part | None
    layout_body: Part | None
    layout_text: Part | None

    def render(self, liquid: Liquid, context: Mapping[str, Any], language: str) -> RenderedEmail:
        where = self.design.field_of
        html = None
        body = "mjml" if self.mjml else "html"
        if self.body is not None:
            html = liquid.render(self.body, context, field=where(language, body))
            if self.layout_body is not None:
                # The body was rendered (and its data escaped) already: the layout takes it as markup.
                wrapped = {**context, "content": Markup(html)}  # noqa: S704
                html = liquid.render(self.layout_body, wrapped, field=f"layout.{body}")
            html = _finish_html(html, self.mjml, field=where(language, body))
        text = liquid.render(self.text, context, field=where(language, "text")) if self.text is not None else None
        if text is not None and self.layout_text is not None:
            text = liquid.render(self.layout_text, {**context, "content": text}, field="layout.text")
        if text is None and html is not None:
            text = html_to_text(html)
        reply_to = self.reply_to
        return RenderedEmail(
            language=language,
            sender=_header(liquid.render(self.sender or "", context, field=where(language, "from"))),
            reply_to=_header(liquid.render(reply_to, context, field=where(language, "replyTo"))) if reply_to else None,
            subject=_header(liquid.render(self.subject or "", context, field=where(language, "subject"))),
            html=html,
            text=text,
        )

    def parts(self) -> Iterator[tuple[str, Part | None, bool]]:
        where, language = self.design.field_of, self.language
        body = "mjml" if self.mjml else "html"
        yield where(language, "from"), self.sender, False
        yield where(language, "replyTo"), self.reply_to, False
        yield where(language, "subject"), self.subject, False
        yield where(language, body), self.body, False
        yield where(language, "text"), self.text, False
        yield f"layout.{body}", self.layout_body, True
        yield "layout.text", self.layout_text, True


def compile_email(liquid: Liquid, design: Design, language: str) -> CompiledEmail:
    is_mjml = bool(design.content_in(language).get("mjml"))
    layout = design.layout or {}
    layout_key = "mjml" if is_mjml else "html"
    layout_body, layout_text = layout.get(layout_key), layout.get("text")
    return CompiledEmail(
        design,
        language,
        sender=compile_part(liquid, design, language, "from"),
        reply_to=compile_part(liquid, design, language, "replyTo"),
        subject=compile_part(liquid, design, language, "subject"),
        body=compile_part(liquid, design, language, layout_key, html=True),
        mjml=is_mjml,
        text=compile_part(liquid, design, language, "text"),
        layout_body=liquid.compile(layout_body, field=f"layout.{layout_key}", html=True) if layout_body else None,
        layout_text=liquid.compile(layout_text, field="layout.text") if layout_text else None,
    )


def _finish_html(html: str, is_mjml: bool, *, field: str) -> str:
    if is_mjml:
        try:
            html = mjml.mjml2html(html)
        except ValueError as error:
            raise RenderError(f"MJML: {error}", field=field) from error
    if "<style" in html:
        try:
            html = _INLINER.inline(html)
        except ValueError as error:  # css_inline.InlineError
            raise RenderError(f"CSS: {error}", field=field) from error
    return html


def html_to_text(html: str) -> str:
    """A readable text part written from the HTML, links kept as ``[label](url)``."""
    lines = [line.rstrip() for line in get_text(html, _TEXT_CONFIG).strip().splitlines()]
    return "\n".join(lines) + "\n"


def _header(value: str) -> str:
    # A header is one line: a newline in the data must never inject another header.
    return " ".join(value.split())
