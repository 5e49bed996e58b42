"""REST: testing a template before it goes live: seed addresses, preview and proofs."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path

from envoi.access.api import CanEditTemplates, CanView, RuntimeDep
from envoi.channels.base import EmailMessage, Failed, Outcome, Retry, Sent
from envoi.errors import ValidationFailed
from envoi.runtime import Runtime
from envoi.templates import audit, seeds
from envoi.templates.api import TemplateId
from envoi.templates.attachments import attach_files, attachment_urls
from envoi.templates.models import SeedAddress
from envoi.templates.proofs import Proof, prepare_proofs, preview
from envoi.templates.push import RenderedPush
from envoi.templates.schemas import (
    PreviewIn,
    PreviewOut,
    ProblemOut,
    ProofIn,
    ProofOut,
    PushPreviewOut,
    SeedIn,
    SeedOut,
)
from envoi.templates.service import get_template
from envoi.templates.sms import RenderedSms

router = APIRouter(prefix="/api/v1/templates", tags=["templates: testing"])
SeedId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _seed_out(seed: SeedAddress) -> SeedOut:
    return SeedOut(
        id=seed.id,
        label=seed.label,
        address=seed.address,
        platform=seed.platform,
        external_id=seed.external_id,
        language=seed.language,
        ctx=seed.ctx,
    )


@router.get("/{template_id}/seeds", response_model=list[SeedOut])
async def list_seeds(template_id: TemplateId, runtime: RuntimeDep, _who: CanView) -> list[SeedOut]:
    async with runtime.transaction() as session:
        await get_template(session, template_id)
        return [_seed_out(seed) for seed in await seeds.list_seeds(session, template_id)]


@router.post("/{template_id}/seeds", status_code=201, response_model=SeedOut)
async def add_seed(template_id: TemplateId, data: SeedIn, runtime: RuntimeDep, who: CanEditTemplates) -> SeedOut:
    """A test recipient with its sample data (JSON `ctx` or Adobe-style `ctxXml`; neither: the event type's
    sample). Publishing renders the template for every seed and refuses if any fails."""
    async with runtime.transaction() as session:
        template = await get_template(session, template_id)
        seed = await seeds.save_seed(session, template, data, region=runtime.settings.default_region)
        audit.record(session, template_id, who.actor, "seed_added", _seed_details(seed))
        return _seed_out(seed)


@router.put("/{template_id}/seeds/{seed_id}", response_model=SeedOut)
async def replace_seed(
    template_id: TemplateId, seed_id: SeedId, data: SeedIn, runtime: RuntimeDep, who: CanEditTemplates
) -> SeedOut:
    async with runtime.transaction() as session:
        template = await get_template(session, template_id)
        seed = await seeds.save_seed(session, template, data, seed_id, region=runtime.settings.default_region)
        audit.record(session, template_id, who.actor, "seed_changed", _seed_details(seed))
        return _seed_out(seed)


@router.delete("/{template_id}/seeds/{seed_id}", status_code=204)
async def delete_seed(template_id: TemplateId, seed_id: SeedId, runtime: RuntimeDep, who: CanEditTemplates) -> None:
    async with runtime.transaction() as session:
        await get_template(session, template_id)
        seed = await seeds.get_seed(session, template_id, seed_id)
        audit.record(session, template_id, who.actor, "seed_deleted", _seed_details(seed))
        await seeds.delete_seed(session, template_id, seed_id)


def _seed_details(seed: SeedAddress) -> dict[str, object]:
    return {"seedId": seed.id, "label": seed.label, "address": seed.address}


@router.post("/{template_id}/preview", response_model=PreviewOut)
async def preview_template(template_id: TemplateId, data: PreviewIn, runtime: RuntimeDep, _who: CanView) -> PreviewOut:
    """Render the draft (or `version`) without sending anything. A template that fails answers 422
    `render_failed` with the field, `line` and `expression`; `warnings` lists what publishing would refuse."""
    async with runtime.transaction() as session:
        template = await get_template(session, template_id)
        result = await preview(session, template, data)
    rendered = result.rendered
    shown = PreviewOut(
        version=result.version,
        data=result.data,
        language=rendered.language,
        sender=None,
        text=None,
        warnings=[ProblemOut(field=field, message=message) for field, message in result.warnings],
    )
    if isinstance(rendered, RenderedPush):
        shown.push = PushPreviewOut(
            title=rendered.title, body=rendered.body, data=rendered.data, badge=rendered.badge, sound=rendered.sound
        )
        return shown
    shown.sender, shown.text = rendered.sender, rendered.text
    if isinstance(rendered, RenderedSms):
        shown.encoding, shown.segments = rendered.encoding, rendered.segments
    else:
        shown.reply_to, shown.subject, shown.html = rendered.reply_to, rendered.subject, rendered.html
    return shown


@router.post("/{template_id}/proof", response_model=list[ProofOut])
async def send_proofs(
    template_id: TemplateId, runtime: RuntimeDep, who: CanEditTemplates, data: ProofIn | None = None
) -> list[ProofOut]:
    """Send the draft to its seed addresses now, as the recipient would get it, marked as a proof
    (`[Proof]` subject prefix, `X-Envoi-Proof` header). Proofs are not events: no statistics count them; the
    template's audit trail lists each one."""
    async with runtime.transaction() as session:
        template = await get_template(session, template_id)
        proofs = await prepare_proofs(
            session,
            template,
            data.seed_ids if data else None,
            message_id_domain=runtime.settings.message_id_domain,
        )
    await asyncio.gather(*(_attach(runtime, proof) for proof in proofs))
    sendable = [p for p in proofs if p.message is not None]
    channel = runtime.channels.get(template.channel)
    if channel is None:
        raise ValidationFailed(f"no {template.channel} provider is configured", field="channel")
    outcomes = await channel.send_many([p.message for p in sendable if p.message])
    results = {id(p): _proof_out(p, o) for p, o in zip(sendable, outcomes, strict=True)}
    out = [results.get(id(p)) or _proof_out(p, None) for p in proofs]
    async with runtime.transaction() as session:
        for result in out:
            audit.record(session, template_id, who.actor, "proof_sent", result.model_dump(by_alias=True))
    return out


async def _attach(runtime: Runtime, proof: Proof) -> None:
    if not isinstance(proof.message, EmailMessage):
        return
    try:
        urls = attachment_urls(proof.ctx)
    except ValueError as error:
        proof.message, proof.failure, proof.error = None, "failed", f"attachment: {error}"
        return
    if urls:
        attached = await attach_files(runtime.outbound, proof.message, urls)
        if isinstance(attached, EmailMessage):
            proof.message = attached
        else:
            proof.message, proof.failure, proof.error = None, "failed", attached.reason


def _proof_out(proof: Proof, outcome: Outcome | None) -> ProofOut:
    seed = proof.seed
    out = ProofOut(seed_id=seed.id, label=seed.label, address=seed.address, language=proof.language, status="sent")
    if outcome is None:
        out.status, out.error = proof.failure or "failed", proof.error
    elif isinstance(outcome, Sent):
        out.provider_id = outcome.provider_id
    else:
        out.status = "failed"
        out.error = outcome.reason if isinstance(outcome, Failed | Retry) else f"address refused: {outcome.reason}"
    return out
