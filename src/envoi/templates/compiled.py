"""A design compiled once (per version, in the worker) and rendered for many events, for its channel."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from envoi.templates.design import Design, Part
from envoi.templates.email import CompiledEmail, RenderedEmail, compile_email
from envoi.templates.locales import pick_language
from envoi.templates.rendering import Liquid
from envoi.templates.sms import CompiledSms, RenderedSms, compile_sms

Rendered = RenderedEmail | RenderedSms


class CompiledTemplate:
    def __init__(self, design: Design):
        self.design = design
        self.liquid = Liquid(design.snippets)
        self.language = design.language
        languages = (design.language, *design.variants)
        self.languages: dict[str, CompiledEmail | CompiledSms] = {
            language: (compile_sms if design.channel == "sms" else compile_email)(self.liquid, design, language)
            for language in languages
        }

    def pick(self, language: str | None) -> str:
        return pick_language(language, self.design.variants, self.language)

    def render(self, context: Mapping[str, Any], language: str | None = None) -> Rendered:
        """The email or SMS for an event in ``language`` (the best variant is chosen). Raises RenderError
        naming the field, line and expression that failed."""
        chosen = self.pick(language)
        return self.languages[chosen].render(self.liquid, context, chosen)

    def parts(self) -> Iterator[tuple[str, Part | None, bool]]:
        """(field, compiled Liquid, whether it is a layout) of every piece in every language."""
        for compiled in self.languages.values():
            yield from compiled.parts()
