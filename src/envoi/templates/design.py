"""A template's design (its content per language, layout and snippets) and its compiled form.

What a design holds depends on its channel: an email (sender, subject, HTML or MJML, text; see ``email.py``),
an SMS (text, sender; see ``sms.py``) or a push notification (title, body, data, badge, sound; see ``push.py``).
It is stored under the channel's name, beside the variants.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from liquid import BoundTemplate

from envoi.templates.rendering import Liquid

EVENT_VARIABLES = frozenset({"id", "type", "email", "mobilePhone", "externalId", "origin", "language"})
# The profile an event's externalId matched (empty when none did), and a marketing email's recipient.
PROFILE_VARIABLES = frozenset(
    {"id", "email", "phone", "firstName", "lastName", "language", "externalId", "attributes", "subscribed"}
)
CHANNELS = ("email", "sms", "push")
_BODIES = ("html", "mjml", "text")  # a variant that sets one of these replaces the default's whole body

Part = BoundTemplate | str  # a str is literal text with no Liquid in it


@dataclass(frozen=True, slots=True)
class Design:
    """What a template renders: the draft, or a published version with its layout and snippets frozen in."""

    content: dict[str, Any]  # in the default language, in the API's shape for the channel
    channel: str = "email"
    language: str = "en"
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    layout: dict[str, Any] | None = None  # {name, html, mjml, text}
    snippets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_version(cls, stored: Mapping[str, Any]) -> Design:
        """A version's stored content, with its frozen layout and snippets."""
        return cls.of_draft(stored, layout=stored.get("layout"), snippets=dict(stored.get("snippets") or {}))

    @classmethod
    def of_draft(
        cls, stored: Mapping[str, Any], *, layout: dict[str, Any] | None = None, snippets: dict[str, str] | None = None
    ) -> Design:
        """A template's stored draft, which names its layout: the caller gives the layout and snippets of today."""
        channel = next((c for c in CHANNELS if c in stored), "email")
        return cls(
            content=dict(stored[channel]),
            channel=channel,
            language=stored.get("language") or "en",
            variants=dict(stored.get("variants") or {}),
            layout=layout,
            snippets=snippets or {},
        )

    def as_draft(self, layout_name: str | None) -> dict[str, Any]:
        return {self.channel: self.content, "variants": self.variants, "language": self.language, "layout": layout_name}

    def as_version(self) -> dict[str, Any]:
        return {
            self.channel: self.content,
            "language": self.language,
            "variants": self.variants,
            "layout": self.layout,
            "snippets": self.snippets,
        }

    def content_in(self, language: str) -> dict[str, Any]:
        """The content for one language: the variant's fields over the default's."""
        if language == self.language:
            return self.content
        merged = dict(self.content)
        variant = self.variants[language]
        if self.channel == "email" and (variant.get("html") or variant.get("mjml")):
            # A variant's body replaces the default's, whatever its kind; and the default's text part, which
            # is in the default's language, gives way to one written from the variant's HTML.
            for key in _BODIES:
                merged.pop(key, None)
        merged.update({k: v for k, v in variant.items() if v})
        return merged

    def field_of(self, language: str, key: str) -> str:
        """Where the ``key`` rendered in ``language`` is written: the variant's own field, or the default's."""
        if language != self.language and self.variants[language].get(key):
            return f"variants.{language}.{key}"
        return f"{self.channel}.{key}"

    def sources(self) -> dict[str, str]:
        """Every piece of Liquid by the field that holds it, for checks and diffs."""
        found = dict(_liquid_fields(self.channel, self.content))
        for language, variant in sorted(self.variants.items()):
            found |= dict(_liquid_fields(f"variants.{language}", variant))
        for key in _BODIES:
            if self.layout and self.layout.get(key):
                found[f"layout.{key}"] = self.layout[key]
        found |= {f"snippets.{name}": source for name, source in sorted(self.snippets.items())}
        return found


def _liquid_fields(prefix: str, content: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Each non-empty string by its field; an object's strings (a push's data) by ``field.key``."""
    for key, value in content.items():
        if isinstance(value, str) and value:
            yield f"{prefix}.{key}", value
        elif isinstance(value, Mapping):
            yield from _liquid_fields(f"{prefix}.{key}", value)


def compile_part(liquid: Liquid, design: Design, language: str, key: str, *, html: bool = False) -> Part | None:
    """One field of the content in ``language``, compiled (a syntax error names its field and line)."""
    source = design.content_in(language).get(key)
    if not source:
        return None
    template = liquid.compile(source, field=design.field_of(language, key), html=html)
    return source if "{" not in source else template


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
    profile: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The variables a template sees: ``ctx`` (the event's data), ``event`` (its attributes) and ``profile``
    (the profile reconciled with it by externalId, empty when none was)."""
    return {
        "ctx": ctx,
        "profile": profile or {},
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
