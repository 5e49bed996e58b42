"""A design compiled once (per version, in the worker) and rendered for many events, for its channel."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from envoi.templates.design import Design, Part
from envoi.templates.email import CompiledEmail, RenderedEmail, compile_email
from envoi.templates.locales import pick_language
from envoi.templates.push import CompiledPush, RenderedPush, compile_push
from envoi.templates.rendering import Liquid
from envoi.templates.sms import CompiledSms, RenderedSms, compile_sms

Rendered = RenderedEmail | RenderedSms | RenderedPush
Compiled = CompiledEmail | CompiledSms | CompiledPush
_COMPILERS: dict[str, Callable[[Liquid, Design, str], Compiled]] = {
    "email": compile_email,
    "sms": compile_sms,
    "push": compile_push,
}


class CompiledTemplate:
    def __init__(self, design: Design):
        self.design = design
        self.liquid = Liquid(design.snippets)
        self.language = design.language
        languages = (design.language, *design.variants)
        compile_language = _COMPILERS[design.channel]
        self.languages: dict[str, Compiled] = {
            language: compile_language(self.liquid, design, language) for language in languages
        }

    def pick(self, language: str | None) -> str:
        return pick_language(language, self.design.variants, self.language)

    def render(self, context: Mapping[str, Any], language: str | None = None) -> Rendered:
        """The email, SMS or push notification for an event in ``language`` (the best variant is chosen).
        Raises RenderError naming the field, line and expression that failed."""
        chosen = self.pick(language)
        return self.languages[chosen].render(self.liquid, context, chosen)

    def parts(self) -> Iterator[tuple[str, Part | None, bool]]:
        """(field, compiled Liquid, whether it is a layout) of every piece in every language."""
        for compiled in self.languages.values():
            yield from compiled.parts()
