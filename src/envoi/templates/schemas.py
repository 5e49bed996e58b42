"""The templates API's shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SkipValidation, field_validator, model_validator

from envoi.addresses import check_mailbox
from envoi.db.base import ADDRESS_LENGTH
from envoi.nesting import JsonObject
from envoi.templates.locales import normalize_language

Channel = Literal["email", "sms", "push"]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")


def _static_mailbox(value: str | None) -> str | None:
    # A header written with Liquid is checked when it renders; a literal one is checked now.
    if value is None or "{{" in value:
        return value
    return check_mailbox(value)


def _language(value: str | None) -> str | None:
    return normalize_language(value) if value is not None else None


class EmailVariant(_Model):
    """A language variant: the fields it sets replace the default language's; the others are shared."""

    sender: str | None = Field(None, alias="from", max_length=998)
    reply_to: str | None = Field(None, alias="replyTo", max_length=998)
    subject: str | None = Field(None, max_length=2000)
    html: str | None = Field(None, max_length=1_000_000)
    mjml: str | None = Field(None, max_length=1_000_000, description="MJML, compiled to HTML after Liquid.")
    text: str | None = Field(None, max_length=1_000_000, description="Unset: written from the HTML.")

    _check_sender = field_validator("sender")(_static_mailbox)
    _check_reply_to = field_validator("reply_to")(_static_mailbox)

    @model_validator(mode="after")
    def _one_body(self) -> EmailVariant:
        if self.html and self.mjml:
            raise ValueError("give either 'html' or 'mjml', not both")
        return self


class EmailContent(EmailVariant):
    sender: str = Field(alias="from", min_length=1, max_length=998, examples=["Shop <shop@example.com>"])
    subject: str = Field(min_length=1, max_length=2000, examples=["Your order {{ ctx.orderId }}"])


def _sms_sender(value: str | None) -> str | None:
    # Networks show an alphanumeric sender of up to 11 characters, or a number of up to 15 digits.
    if value is None or "{{" in value:
        return value
    plain = value.strip()
    if not (plain.lstrip("+").isdigit() and len(plain.lstrip("+")) <= 15) and not (
        plain.isascii() and plain.replace(" ", "").isalnum() and len(plain) <= 11
    ):
        raise ValueError("an SMS sender is up to 11 letters and digits, or a phone number")
    return plain


class SmsVariant(_Model):
    """A language variant of an SMS: the fields it sets replace the default language's."""

    sender: str | None = Field(None, alias="from", max_length=20)
    text: str | None = Field(None, max_length=10_000)

    _check_sender = field_validator("sender")(_sms_sender)


class SmsContent(SmsVariant):
    sender: str | None = Field(
        None, alias="from", max_length=20, description="Unset: the provider's sender.", examples=["Shop"]
    )
    text: str = Field(min_length=1, max_length=10_000, examples=["Your code is {{ ctx.code }}"])


# Keys a provider keeps for itself: FCM's reserved words and prefixes, and APNs' "aps".
_RESERVED_DATA_KEYS = frozenset({"aps", "from", "notification", "message_type", "collapse_key"})
_RESERVED_DATA_PREFIXES = ("google", "gcm")


def _push_data(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > 100:
        raise ValueError("at most 100 keys")
    for key in value:
        if not key or len(key) > 64 or not key.isprintable():
            raise ValueError(f"the key '{key[:64]}' must be 1 to 64 printable characters")
        if key.lower() in _RESERVED_DATA_KEYS or key.lower().startswith(_RESERVED_DATA_PREFIXES):
            raise ValueError(f"the key '{key}' is reserved by the push providers")
    return value


def _push_badge(value: str | int | None) -> str | None:
    # Liquid is checked when it renders (publish refuses a badge that is not a number); a literal now.
    if value is None:
        return None
    shown = str(value).strip()
    if shown and "{" not in shown and not (shown.isdecimal() and shown.isascii()):
        raise ValueError("a badge is a whole number of 0 or more, or Liquid that renders to one")
    return shown or None


class PushVariant(_Model):
    """A language variant of a push notification: the fields it sets replace the default language's (``data``
    as a whole)."""

    title: str | None = Field(None, max_length=1000)
    body: str | None = Field(None, max_length=10_000)
    data: dict[str, Annotated[str, Field(max_length=4096)]] | None = Field(
        None, description="Key-value pairs delivered to the app, not shown; each value is Liquid."
    )
    badge: str | int | None = Field(
        None, description="The number on the app's icon: a number, or Liquid that renders to one (empty: none)."
    )
    sound: str | None = Field(None, max_length=255, description="A sound file of the app, or 'default'.")

    _check_data = field_validator("data")(_push_data)
    _check_badge = field_validator("badge")(_push_badge)


class PushContent(PushVariant):
    title: str | None = Field(None, max_length=1000, examples=["Order {{ ctx.orderId }}"])
    body: str = Field(min_length=1, max_length=10_000, examples=["Your parcel is on its way"])


AnyVariant = EmailVariant | SmsVariant | PushVariant
VARIANT_MODELS: dict[str, type[AnyVariant]] = {"email": EmailVariant, "sms": SmsVariant, "push": PushVariant}


class TemplateIn(_Model):
    name: str = Field(min_length=1, max_length=200)
    event_type: str = Field(alias="eventType", min_length=1, max_length=100)
    channel: Channel = "email"
    language: str = Field("en", max_length=35, description="The language of `email`; events fall back to it.")
    layout: str | None = Field(None, max_length=100, description="The name of a layout to wrap the body in.")
    email: EmailContent | None = Field(None, description="The content of an email template.")
    sms: SmsContent | None = Field(None, description="The content of an SMS template.")
    push: PushContent | None = Field(None, description="The content of a push template.")
    # Checked in the service with the channel's model: a union would list every model's errors, under its name.
    variants: dict[str, SkipValidation[AnyVariant]] = Field(
        default_factory=dict,
        description="Content per language (`fr`, `en-GB`…), chosen by the event's language; the fields a variant "
        "sets replace the default's.",
    )

    _check_language = field_validator("language")(_language)

    @field_validator("variants")
    @classmethod
    def _variant_languages(cls, value: dict[str, AnyVariant]) -> dict[str, AnyVariant]:
        normalized: dict[str, AnyVariant] = {}
        for tag, variant in value.items():
            language = normalize_language(tag)
            if language in normalized:
                raise ValueError(f"'{tag}' is given twice")
            normalized[language] = variant
        return normalized

    @model_validator(mode="after")
    def _default_not_a_variant(self) -> TemplateIn:
        if self.language in self.variants:
            raise ValueError(f"'{self.language}' is the default language: put its content in '{self.channel}'")
        return self


class AdobeImportIn(TemplateIn):
    """An Adobe Campaign template: subject, HTML and text written with JST (``<%= rtEvent.ctx.x %>``)."""


class UnconvertedOut(_Model):
    field: str
    snippet: str = Field(description="JST left in the draft as a visible Liquid comment, for a person to rewrite.")


class AdobeImportOut(_Model):
    template: TemplateOut
    unconverted: list[UnconvertedOut]


class VersionOut(_Model):
    version: int
    published_at: datetime = Field(alias="publishedAt")
    published_by: str | None = Field(alias="publishedBy")


class TemplateOut(_Model):
    id: int
    name: str
    event_type: str = Field(alias="eventType")
    channel: str
    state: str
    language: str
    layout: str | None
    email: EmailContent | None
    sms: SmsContent | None
    push: PushContent | None
    variants: dict[str, AnyVariant]
    live_version: int | None = Field(alias="liveVersion")
    versions: list[VersionOut]
    created_at: datetime = Field(alias="createdAt")
    updated_at: datetime = Field(alias="updatedAt")


class LayoutContent(_Model):
    name: str
    html: str | None = None
    mjml: str | None = None
    text: str | None = None


class VersionDetailOut(VersionOut):
    template_id: int = Field(alias="templateId")
    live: bool
    language: str
    email: EmailContent | None
    sms: SmsContent | None
    push: PushContent | None
    variants: dict[str, AnyVariant]
    layout: LayoutContent | None = Field(description="The layout as it was when this version was published.")
    snippets: dict[str, str] = Field(description="The snippets this version uses, as they were when published.")


class PublishOut(_Model):
    version: int


class StateOut(_Model):
    id: int
    state: str
    live_version: int | None = Field(alias="liveVersion")
    released_events: int = Field(0, alias="releasedEvents", description="Paused events put back in the queue.")


class SeedIn(_Model):
    label: str = Field(min_length=1, max_length=200, examples=["Ann, French customer"])
    address: str = Field(
        min_length=1,
        max_length=ADDRESS_LENGTH,
        description="Where proofs go: an email address, a phone number, or a push registration token.",
    )
    platform: Literal["ios", "android", "web"] | None = Field(
        None, description="Push: the token's platform (unset: web for a token that is a JSON object)."
    )
    external_id: str | None = Field(None, alias="externalId", max_length=255)
    language: str | None = Field(None, max_length=35, description="Renders this language's variant.")
    ctx: JsonObject | None = Field(None, description="Sample event data. Unset: the event type's sample.")
    ctx_xml: str | None = Field(
        None, alias="ctxXml", max_length=1_000_000, description="Or the data as Adobe-style XML: <ctx>...</ctx>."
    )

    _check_language = field_validator("language")(_language)

    @model_validator(mode="after")
    def _one_ctx(self) -> SeedIn:
        if self.ctx is not None and self.ctx_xml is not None:
            raise ValueError("give either 'ctx' or 'ctxXml', not both")
        return self


class SeedOut(_Model):
    id: int
    label: str
    address: str
    platform: str | None = Field(description="Push: ios, android or web.")
    external_id: str | None = Field(alias="externalId")
    language: str | None
    ctx: dict[str, Any] | None


class PreviewIn(_Model):
    """What to render: a seed address's data, inline data, or (when neither) the event type's sample."""

    seed_id: int | None = Field(None, alias="seedId", ge=1, le=2**63 - 1)
    ctx: JsonObject | None = None
    ctx_xml: str | None = Field(None, alias="ctxXml", max_length=1_000_000)
    language: str | None = Field(None, max_length=35, description="The event's language; picks the variant.")
    email: str | None = Field(None, max_length=320, description="The recipient the template sees as event.email.")
    external_id: str | None = Field(None, alias="externalId", max_length=255)
    version: int | None = Field(None, ge=1, le=2**31 - 1, description="A published version instead of the draft.")

    @model_validator(mode="after")
    def _one_source(self) -> PreviewIn:
        if sum(x is not None for x in (self.seed_id, self.ctx, self.ctx_xml)) > 1:
            raise ValueError("give at most one of 'seedId', 'ctx' and 'ctxXml'")
        return self


class ProblemOut(_Model):
    field: str
    message: str


class PushPreviewOut(_Model):
    title: str | None
    body: str
    data: dict[str, str] = Field(description="What the app receives, each value rendered.")
    badge: int | None
    sound: str | None


class PreviewOut(_Model):
    version: int | None = Field(description="The version rendered; null for the draft.")
    data: str = Field(description="Whose data was rendered: a seed, the inline ctx, or the event type's sample.")
    language: str = Field(description="The variant chosen.")
    sender: str | None = Field(alias="from")
    reply_to: str | None = Field(None, alias="replyTo")
    subject: str | None = None
    html: str | None = None
    text: str | None
    encoding: str | None = Field(None, description="SMS: GSM-7 or UCS-2, chosen from the text.")
    segments: int | None = Field(None, description="SMS: how many parts the text goes out in (and is billed as).")
    push: PushPreviewOut | None = Field(None, description="A push notification, in the template's shape.")
    warnings: list[ProblemOut] = Field(description="What would stop this draft from being published.")


class ProofIn(_Model):
    seed_ids: list[int] | None = Field(None, alias="seedIds", description="Unset: every seed address.")


class ProofOut(_Model):
    seed_id: int = Field(alias="seedId")
    label: str
    address: str
    language: str | None
    status: Literal["sent", "failed", "render_failed"]
    provider_id: str | None = Field(None, alias="providerId")
    error: str | None = None


class AuditEntryOut(_Model):
    at: datetime
    actor: str
    action: str
    details: dict[str, Any] | None


AdobeImportOut.model_rebuild()
