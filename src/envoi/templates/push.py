"""A push template: a body, and optionally a title, data for the app (each value Liquid), a badge and a sound."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from envoi.templates.design import Design, Part, compile_part
from envoi.templates.rendering import Liquid, RenderError


@dataclass(frozen=True, slots=True)
class RenderedPush:
    language: str
    title: str | None
    body: str
    data: dict[str, str]
    badge: int | None
    sound: str | None


@dataclass(slots=True)
class CompiledPush:
    design: Design
    language: str
    title: Part | None
    body: Part | None
    data: dict[str, Part]
    badge: Part | None
    sound: Part | None

    def render(self, liquid: Liquid, context: Mapping[str, Any], language: str) -> RenderedPush:
        fields = self.design.field_of
        title = liquid.render(self.title, context, field=fields(language, "title")).strip() if self.title else ""
        body = liquid.render(self.body, context, field=fields(language, "body")).strip() if self.body else ""
        data = {
            key: liquid.render(value, context, field=f"{fields(language, 'data')}.{key}")
            for key, value in self.data.items()
        }
        sound = liquid.render(self.sound, context, field=fields(language, "sound")).strip() if self.sound else ""
        return RenderedPush(language, title or None, body, data, self._badge(liquid, context, language), sound or None)

    def _badge(self, liquid: Liquid, context: Mapping[str, Any], language: str) -> int | None:
        if self.badge is None:
            return None
        field = self.design.field_of(language, "badge")
        shown = liquid.render(self.badge, context, field=field).strip()
        if not shown:
            return None  # no badge for this event: the app's count is left as it is
        if not shown.isdecimal() or not shown.isascii():
            raise RenderError(f"the badge must be a whole number of 0 or more, not '{shown[:50]}'", field=field)
        return int(shown)

    def parts(self) -> Iterator[tuple[str, Part | None, bool]]:
        where, language = self.design.field_of, self.language
        yield where(language, "title"), self.title, False
        yield where(language, "body"), self.body, False
        for key, value in self.data.items():
            yield f"{where(language, 'data')}.{key}", value, False
        yield where(language, "badge"), self.badge, False
        yield where(language, "sound"), self.sound, False


def compile_push(liquid: Liquid, design: Design, language: str) -> CompiledPush:
    data = design.content_in(language).get("data") or {}
    where = design.field_of(language, "data")
    return CompiledPush(
        design,
        language,
        title=compile_part(liquid, design, language, "title"),
        body=compile_part(liquid, design, language, "body"),
        data={
            key: source if "{" not in source else liquid.compile(source, field=f"{where}.{key}")
            for key, source in data.items()
        },
        badge=compile_part(liquid, design, language, "badge"),
        sound=compile_part(liquid, design, language, "sound"),
    )
