"""REST: email deliveries (``/api/v1/deliveries``), their A/B test figures and winner, and delivery templates
(``/api/v1/delivery-templates``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from envoi.access.api import CanManageDeliveries, CanView, RuntimeDep
from envoi.access.audit import audit
from envoi.campaigns import deliveries as service
from envoi.campaigns.ab_tests import delivery_figures, send_winner
from envoi.campaigns.models import Delivery
from envoi.campaigns.schemas import DeliveryFields, DeliveryIn, DeliveryOut, FiguresOut, SendIn, SentOut, WinnerIn
from envoi.db.base import utcnow
from envoi.settings import Settings

router = APIRouter(prefix="/api/v1", tags=["email deliveries"])
Id = Annotated[int, Path(ge=1, le=2**62)]


def _out(delivery: Delivery, settings: Settings) -> DeliveryOut:
    problems = [] if delivery.is_template else service.delivery_problems(delivery, settings)
    return DeliveryOut.of(delivery, problems)


def _kind(template: bool) -> str:
    return "delivery_template" if template else "delivery"


async def _list(runtime: RuntimeDep, template: bool) -> list[DeliveryOut]:
    async with runtime.transaction() as session:
        found = await service.list_deliveries(session, templates=template)
        return [_out(d, runtime.settings) for d in found]


async def _create(body: DeliveryIn, runtime: RuntimeDep, who: CanManageDeliveries, template: bool) -> DeliveryOut:
    async with runtime.transaction() as session:
        delivery = await service.create_delivery(
            session,
            name=body.name,
            template_id=body.template,
            fields=body.changes(),
            actor=who.actor,
            is_template=template,
        )
        audit(session, who, "created", _kind(template), delivery.id, {"name": delivery.name})
        return _out(delivery, runtime.settings)


async def _update(
    delivery_id: int, body: DeliveryFields, runtime: RuntimeDep, who: CanManageDeliveries, template: bool
) -> DeliveryOut:
    async with runtime.transaction() as session:
        delivery = await service.find_delivery(session, delivery_id, template=template, lock=True)
        changes = body.changes()
        await service.update_delivery(session, delivery, changes, runtime.settings)
        audit(session, who, "updated", _kind(template), delivery.id, {"fields": sorted(changes)})
        return _out(delivery, runtime.settings)


async def _delete(delivery_id: int, runtime: RuntimeDep, who: CanManageDeliveries, template: bool) -> None:
    async with runtime.transaction() as session:
        delivery = await service.find_delivery(session, delivery_id, template=template, lock=True)
        await service.delete_delivery(session, delivery)
        audit(session, who, "deleted", _kind(template), delivery_id, {"name": delivery.name})


@router.get("/deliveries", response_model=list[DeliveryOut])
async def list_deliveries(runtime: RuntimeDep, _who: CanView) -> list[DeliveryOut]:
    return await _list(runtime, False)


@router.post("/deliveries", response_model=DeliveryOut, status_code=201)
async def create_delivery(body: DeliveryIn, runtime: RuntimeDep, who: CanManageDeliveries) -> DeliveryOut:
    """A draft copied from a delivery template (the factory "Email" unless ``template`` names another, such as
    the factory "A/B test email"), with the fields given changed."""
    return await _create(body, runtime, who, False)


@router.get("/deliveries/{delivery_id}", response_model=DeliveryOut)
async def read_delivery(delivery_id: Id, runtime: RuntimeDep, _who: CanView) -> DeliveryOut:
    async with runtime.transaction() as session:
        return _out(await service.find_delivery(session, delivery_id), runtime.settings)


@router.patch("/deliveries/{delivery_id}", response_model=DeliveryOut)
async def update_delivery(
    delivery_id: Id, body: DeliveryFields, runtime: RuntimeDep, who: CanManageDeliveries
) -> DeliveryOut:
    return await _update(delivery_id, body, runtime, who, False)


@router.delete("/deliveries/{delivery_id}", status_code=204)
async def delete_delivery(delivery_id: Id, runtime: RuntimeDep, who: CanManageDeliveries) -> None:
    await _delete(delivery_id, runtime, who, False)


@router.post("/deliveries/{delivery_id}/send", response_model=SentOut)
async def send_delivery(delivery_id: Id, body: SendIn, runtime: RuntimeDep, who: CanManageDeliveries) -> SentOut:
    """Now: the recipients are fixed and the emails queued (the test variants first, for an A/B test). With
    ``at`` in the future: scheduled. Refused (422, each problem named) while anything stops it."""
    now = utcnow()
    async with runtime.transaction() as session:
        delivery = await service.find_delivery(session, delivery_id, lock=True)
        if body.at is not None and body.at > now:
            await service.schedule_delivery(session, runtime.settings, delivery, body.at)
            audit(session, who, "scheduled", "delivery", delivery.id, {"at": body.at.isoformat()})
            return SentOut(state=delivery.state, queued=0)
        queued = await service.launch_delivery(session, runtime.settings, delivery, now)
        audit(session, who, "sent", "delivery", delivery.id, {"queued": queued})
        return SentOut(state=delivery.state, queued=queued)


@router.post("/deliveries/{delivery_id}/cancel", response_model=DeliveryOut)
async def cancel_delivery(delivery_id: Id, runtime: RuntimeDep, who: CanManageDeliveries) -> DeliveryOut:
    """Nothing more goes out: emails already sent stay sent, the others are dropped."""
    async with runtime.transaction() as session:
        delivery = await service.find_delivery(session, delivery_id, lock=True)
        left = await service.cancel_delivery(session, delivery, utcnow())
        audit(session, who, "cancelled", "delivery", delivery.id, {"not_sent": left})
        return _out(delivery, runtime.settings)


@router.post("/deliveries/{delivery_id}/winner", response_model=SentOut)
async def choose_winner(delivery_id: Id, body: WinnerIn, runtime: RuntimeDep, who: CanManageDeliveries) -> SentOut:
    """Send ``variant`` to the rest of the audience: when the test waits for a choice, or to end it early."""
    async with runtime.transaction() as session:
        delivery = await service.find_delivery(session, delivery_id, lock=True)
        queued = await send_winner(session, delivery, body.variant, chosen_by=who.actor, now=utcnow())
        audit(session, who, "winner_chosen", "delivery", delivery.id, {"variant": body.variant, "queued": queued})
        return SentOut(state=delivery.state, queued=queued)


@router.get("/deliveries/{delivery_id}/figures", response_model=list[FiguresOut])
async def read_figures(delivery_id: Id, runtime: RuntimeDep, _who: CanView) -> list[FiguresOut]:
    """Per test variant (and the rest of the audience): recipients, emails sent, and the people (bots are not
    counted) who opened, clicked, unsubscribed, with the rates the winner is chosen by."""
    async with runtime.transaction() as session:
        await service.find_delivery(session, delivery_id)
        return [FiguresOut.of(f) for f in await delivery_figures(session, delivery_id)]


@router.get("/delivery-templates", response_model=list[DeliveryOut])
async def list_delivery_templates(runtime: RuntimeDep, _who: CanView) -> list[DeliveryOut]:
    return await _list(runtime, True)


@router.post("/delivery-templates", response_model=DeliveryOut, status_code=201)
async def create_delivery_template(body: DeliveryIn, runtime: RuntimeDep, who: CanManageDeliveries) -> DeliveryOut:
    """A template copied from another (``template``; the factory "Email" by default)."""
    return await _create(body, runtime, who, True)


@router.get("/delivery-templates/{template_id}", response_model=DeliveryOut)
async def read_delivery_template(template_id: Id, runtime: RuntimeDep, _who: CanView) -> DeliveryOut:
    async with runtime.transaction() as session:
        return _out(await service.find_delivery(session, template_id, template=True), runtime.settings)


@router.patch("/delivery-templates/{template_id}", response_model=DeliveryOut)
async def update_delivery_template(
    template_id: Id, body: DeliveryFields, runtime: RuntimeDep, who: CanManageDeliveries
) -> DeliveryOut:
    """Untick ``notifications`` here and the deliveries made from it afterwards tell nobody."""
    return await _update(template_id, body, runtime, who, True)


@router.delete("/delivery-templates/{template_id}", status_code=204)
async def delete_delivery_template(template_id: Id, runtime: RuntimeDep, who: CanManageDeliveries) -> None:
    await _delete(template_id, runtime, who, True)
