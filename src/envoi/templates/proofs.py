"""Testing a template before it goes live: preview it with some data, and send proofs to its seed addresses.

A proof is rendered from the draft exactly as an event would be, marked (subject prefix, ``X-Envoi-Proof``
header; an SMS's text or a push's title prefixed) and sent straight through the template's channel: it is not an
event and no message row counts it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from sqlalchemy.ext.asyncio import AsyncSession

from envoi.channels.base import EmailMessage
from envoi.channels.push import Platform, PushMessage
from envoi.channels.sms import SmsMessage
from envoi.errors import Problem, RenderFailed, ValidationFailed
from envoi.templates.checks import html_problems, layout_problems, variable_problems
from envoi.templates.compiled import CompiledTemplate, Rendered
from envoi.templates.design import Design, render_context
from envoi.templates.email import RenderedEmail
from envoi.templates.layouts import draft_design
from envoi.templates.models import SeedAddress, Template
from envoi.templates.push import RenderedPush
from envoi.templates.rendering import RenderError
from envoi.templates.schemas import PreviewIn
from envoi.templates.seeds import event_data, get_seed, list_seeds, schema_and_sample, seed_ctx
from envoi.templates.sms import RenderedSms
from envoi.templates.versions import get_version

PROOF_HEADER = "X-Envoi-Proof"


@dataclass(frozen=True, slots=True)
class Preview:
    version: int | None
    data: str
    rendered: Rendered
    warnings: list[Problem]


async def preview(session: AsyncSession, template: Template, data: PreviewIn) -> Preview:
    """The draft (or a version) rendered with a seed's data, inline data or the event type's sample."""
    if data.version is not None:
        design = Design.of_version((await get_version(session, template.id, data.version)).content)
    else:
        design = await draft_design(session, template)
    schema, sample = await schema_and_sample(session, template.event_type)
    email, phone, external_id, language = data.email, None, data.external_id, data.language
    ctx = event_data(schema, data.ctx, data.ctx_xml)
    if data.seed_id is not None:
        seed = await get_seed(session, template.id, data.seed_id)
        label, ctx = f"seed '{seed.label}'", seed_ctx(seed, sample)
        if template.channel == "sms":
            phone = seed.address
        elif template.channel == "email":
            email = email or seed.address
        external_id, language = external_id or seed.external_id, language or seed.language
    elif ctx is not None:
        label = "the ctx given"
    else:
        label, ctx = "the event type's sample", sample or {}
    compiled = CompiledTemplate(design)
    rendered = render(compiled, ctx, language=language, email=email, phone=phone, external_id=external_id)
    warnings = layout_problems(design) + variable_problems(compiled, schema)
    if isinstance(rendered, RenderedEmail):
        warnings += [("html", message) for message in html_problems(rendered)]
    return Preview(data.version, label, rendered, warnings)


def render(
    compiled: CompiledTemplate,
    ctx: Mapping[str, Any],
    *,
    language: str | None,
    email: str | None,
    external_id: str | None,
    phone: str | None = None,
) -> Rendered:
    # event.language is what the event says, as when it is sent; the variant is chosen from it.
    context = render_context(ctx, email=email, mobile_phone=phone, external_id=external_id, language=language)
    try:
        return compiled.render(context, language)
    except RenderError as error:
        raise RenderFailed(str(error), field=error.field, details=error.details()) from None


@dataclass(slots=True)
class Proof:
    seed: SeedAddress
    ctx: Mapping[str, Any]
    message: EmailMessage | SmsMessage | PushMessage | None = None
    language: str | None = None
    error: str | None = None
    failure: Literal["render_failed", "failed"] | None = None  # why it was not sent


async def prepare_proofs(
    session: AsyncSession, template: Template, seed_ids: list[int] | None, *, message_id_domain: str
) -> list[Proof]:
    """Each chosen seed's proof, rendered from the draft; one that fails to render says why and is not sent."""
    seeds = await list_seeds(session, template.id)
    if seed_ids is not None:
        unknown = set(seed_ids) - {seed.id for seed in seeds}
        if unknown:
            raise ValidationFailed(f"template {template.id} has no seed address {min(unknown)}", field="seedIds")
        seeds = [seed for seed in seeds if seed.id in set(seed_ids)]
    if not seeds:
        raise ValidationFailed(
            "add a seed address to the template first; proofs go to its seed addresses", field="seedIds"
        )
    compiled = CompiledTemplate(await draft_design(session, template))
    _schema, sample = await schema_and_sample(session, template.event_type)
    proofs = []
    for seed in seeds:
        proof = Proof(seed, seed_ctx(seed, sample))
        try:
            email = seed.address if template.channel == "email" else None
            phone = seed.address if template.channel == "sms" else None
            rendered = render(
                compiled, proof.ctx, language=seed.language, email=email, phone=phone, external_id=seed.external_id
            )
        except RenderFailed as error:
            proof.error, proof.failure = error.message, "render_failed"
        else:
            proof.language = rendered.language
            proof.message = proof_message(rendered, seed, message_id_domain)
        proofs.append(proof)
    return proofs


def proof_message(rendered: Rendered, seed: SeedAddress, domain: str) -> EmailMessage | SmsMessage | PushMessage:
    if isinstance(rendered, RenderedPush):
        title, body = rendered.title, rendered.body
        if title:
            title = f"[Proof] {title}"
        else:
            body = f"[Proof] {body}"
        return PushMessage(
            ref=0,
            token=seed.address,
            platform=cast(Platform, seed.platform),  # a push seed always has one (seeds.seed_address)
            title=title,
            body=body,
            data=rendered.data,
            badge=rendered.badge,
            sound=rendered.sound,
        )
    if isinstance(rendered, RenderedSms):
        return SmsMessage(ref=0, to=seed.address, text=f"[Proof] {rendered.text}", sender=rendered.sender)
    return EmailMessage(
        ref=0,
        sender=rendered.sender,
        to=seed.address,
        subject=f"[Proof] {rendered.subject}",
        html=rendered.html,
        text=rendered.text,
        reply_to=rendered.reply_to,
        message_id=f"<proof.{uuid.uuid4().hex}@{domain}>",
        headers={PROOF_HEADER: "yes"},
    )
