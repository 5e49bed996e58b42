"""A template's design, compiled: language variants, layout, snippets, MJML, inlined CSS and a text part.

Rendering one email, in order: the body's Liquid; the layout's Liquid around it (``{{ content }}``); MJML to
HTML; CSS from ``<style>`` inlined; the text part rendered, or written from the final HTML when there is none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import css_inline
import mjml
from inscriptis import get_text
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.model.config import ParserConfig
from liquid import BoundTemplate
from markupsafe import Markup

from envoi.templates.locales import pick_language
from envoi.templates.rendering import Liquid, RenderError

EVENT_VARIABLES = frozenset({"id", "type", "email", "mobilePhone", "externalId", "origin", "language"})
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True, keep_link_tags=True)
_TEXT_CONFIG = ParserConfig(display_links=True, css=CSS_PROFILES["strict"])  # "relaxed" indents every <div>

Part = BoundTemplate | str  # a str is literal text with no Liquid in it


@dataclass(frozen=True, slots=True)
class Design:
    """What a template renders: the draft, or a published version with its layout and snippets frozen in."""

    email: dict[str, Any]
    language: str = "en"
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    layout: dict[str, Any] | None = None  # {name, html, mjml, text}
    snippets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_version(cls, content: Mapping[str, Any]) -> Design:
        """A version's stored content, with its frozen layout and snippets."""
        return cls.of_draft(content, layout=content.get("layout"), snippets=dict(content.get("snippets") or {}))

    @classmethod
    def of_draft(
        cls, content: Mapping[str, Any], *, layout: dict[str, Any] | None = None, snippets: dict[str, str] | None = None
    ) -> Design:
        """A template's stored draft, which names its layout: the caller gives the layout and snippets of today."""
        return cls(
            email=dict(content["email"]),
            language=content.get("language") or "en",
            variants=dict(content.get("variants") or {}),
            layout=layout,
            snippets=snippets or {},
        )

    def as_draft(self, layout_name: str | None) -> dict[str, Any]:
        return {"email": self.email, "variants": self.variants, "language": self.language, "layout": layout_name}

    def as_version(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "language": self.language,
            "variants": self.variants,
            "layout": self.layout,
            "snippets": self.snippets,
        }

    def email_in(self, language: str) -> dict[str, Any]:
        """The content for one language: the variant's fields over the default's."""
        if language == self.language:
            return self.email
        merged = dict(self.email)
        variant = self.variants[language]
        if variant.get("html") or variant.get("mjml"):
            # A variant's body replaces the default's, whatever its kind; and the default's text part, which
            # is in the default's language, gives way to one written from the variant's HTML.
            for key in ("html", "mjml", "text"):
                merged.pop(key, None)
        merged.update({k: v for k, v in variant.items() if v})
        return merged

    def sources(self) -> dict[str, str]:
        """Every piece of Liquid by the field that holds it, for checks and diffs."""
        found = {f"email.{k}": v for k, v in self.email.items() if isinstance(v, str) and v}
        for language, variant in sorted(self.variants.items()):
            found |= {f"variants.{language}.{k}": v for k, v in variant.items() if isinstance(v, str) and v}
        for key in ("html", "mjml", "text"):
            if self.layout and self.layout.get(key):
                found[f"layout.{key}"] = self.layout[key]
        found |= {f"snippets.{name}": source for name, source in sorted(self.snippets.items())}
        return found


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
    prefix: str  # "email" or "variants.fr", to name the field that failed
    sender: Part
    reply_to: Part | None
    subject: Part
    body: Part | None
    mjml: bool
    text: Part | None
    layout_body: Part | None
    layout_text: Part | None


class CompiledTemplate:
    """A design compiled once (per version, in the worker) and rendered for many events."""

    def __init__(self, design: Design):
        self.design = design
        self.liquid = Liquid(design.snippets)
        self.language = design.language
        self.emails = {language: self._compile(design, language) for language in (design.language, *design.variants)}

    def _compile(self, design: Design, language: str) -> CompiledEmail:
        content = design.email_in(language)
        prefix = "email" if language == design.language else f"variants.{language}"
        own = design.email if language == design.language else design.variants[language]

        def part(key: str, *, html: bool = False) -> Part | None:
            source = content.get(key)
            if not source:
                return None
            where = prefix if own.get(key) else "email"
            template = self.liquid.compile(source, field=f"{where}.{key}", html=html)  # checks the syntax
            return source if "{" not in source else template

        is_mjml = bool(content.get("mjml"))
        layout = design.layout or {}
        layout_key = "mjml" if is_mjml else "html"
        layout_body = layout.get(layout_key)
        return CompiledEmail(
            prefix=prefix,
            sender=part("from") or "",
            reply_to=part("replyTo"),
            subject=part("subject") or "",
            body=part("mjml", html=True) if is_mjml else part("html", html=True),
            mjml=is_mjml,
            text=part("text"),
            layout_body=self.liquid.compile(layout_body, field=f"layout.{layout_key}", html=True)
            if layout_body
            else None,
            layout_text=self.liquid.compile(layout["text"], field="layout.text") if layout.get("text") else None,
        )

    def pick(self, language: str | None) -> str:
        return pick_language(language, self.design.variants, self.language)

    def render(self, context: Mapping[str, Any], language: str | None = None) -> RenderedEmail:
        """Raises RenderError naming the field, line and expression that failed."""
        chosen = self.pick(language)
        email = self.emails[chosen]
        liquid, prefix = self.liquid, email.prefix
        html = None
        body = "mjml" if email.mjml else "html"
        if email.body is not None:
            html = liquid.render(email.body, context, field=f"{prefix}.{body}")
            if email.layout_body is not None:
                # The body was rendered (and its data escaped) already: the layout takes it as markup.
                wrapped = {**context, "content": Markup(html)}  # noqa: S704
                html = liquid.render(email.layout_body, wrapped, field=f"layout.{body}")
            html = _finish_html(html, email.mjml, field=f"{prefix}.{body}")
        text = liquid.render(email.text, context, field=f"{prefix}.text") if email.text is not None else None
        if text is not None and email.layout_text is not None:
            text = liquid.render(email.layout_text, {**context, "content": text}, field="layout.text")
        if text is None and html is not None:
            text = html_to_text(html)
        return RenderedEmail(
            language=chosen,
            sender=_header(liquid.render(email.sender, context, field=f"{prefix}.from")),
            reply_to=_header(liquid.render(email.reply_to, context, field=f"{prefix}.replyTo"))
            if email.reply_to is not None
            else None,
            subject=_header(liquid.render(email.subject, context, field=f"{prefix}.subject")),
            html=html,
            text=text,
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


def render_context(
    ctx: Mapping[str, Any],
    *,
    event_id: int | None = None,
    event_type: str | None = None,
    email: str | None = None,
    mobile_phone: str | None = None,
    external_id: str | None = None,
    origin: str | None = None,
    language: str | None = None,
) -> dict[str, Any]:
    """The variables a template sees: ``ctx`` (the event's data) and ``event`` (its attributes)."""
    return {
        "ctx": ctx,
        "event": {
            "id": event_id,
            "type": event_type,
            "email": email,
            "mobilePhone": mobile_phone,
            "externalId": external_id,
            "origin": origin,
            "language": language,
        },
    }
