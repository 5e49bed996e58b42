"""An SMS template: a text (Liquid, no HTML), and optionally its own sender."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from envoi.channels.sms import encode_sms
from envoi.templates.design import Design, Part, compile_part
from envoi.templates.rendering import Liquid


@dataclass(frozen=True, slots=True)
class RenderedSms:
    language: str
    text: str
    sender: str | None

    # Worked out when asked (previews): the worker sends the text, and the channel encodes it once.
    @property
    def encoding(self) -> str:
        """GSM-7 or UCS-2, chosen from the text."""
        return encode_sms(self.text).encoding

    @property
    def segments(self) -> int:
        """How many parts the network carries (and bills)."""
        return encode_sms(self.text).segments


@dataclass(slots=True)
class CompiledSms:
    design: Design
    language: str
    text: Part | None
    sender: Part | None

    def render(self, liquid: Liquid, context: Mapping[str, Any], language: str) -> RenderedSms:
        fields = self.design.field_of
        text = liquid.render(self.text, context, field=fields(language, "text")) if self.text is not None else ""
        text = text.strip()
        sender = liquid.render(self.sender, context, field=fields(language, "from")) if self.sender else None
        sender = " ".join(sender.split()) if sender else None  # one line, as a sender must be
        return RenderedSms(language, text, sender or None)

    def parts(self) -> Iterator[tuple[str, Part | None, bool]]:
        yield self.design.field_of(self.language, "text"), self.text, False
        yield self.design.field_of(self.language, "from"), self.sender, False


def compile_sms(liquid: Liquid, design: Design, language: str) -> CompiledSms:
    return CompiledSms(
        design,
        language,
        text=compile_part(liquid, design, language, "text"),
        sender=compile_part(liquid, design, language, "from"),
    )
